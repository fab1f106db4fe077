"""Keras 3 models registered by name, and their training.

Saved models hold spizoo layers: load them with :func:`load_model` (or ``import spizoo.models.resnet``
before ``keras.saving.load_model``). Importing this package itself loads no TensorFlow.
"""


def load_model(path):
    """Loads a ``.keras`` file saved by spizoo (registers spizoo's layers first)."""
    import keras

    from spizoo.models import resnet  # noqa: F401 - registers the serializable classes

    return keras.saving.load_model(path)
