"""Keras 3 models registered by name, and their training.

Saved models hold spizoo layers and metrics: load them with :func:`load_model` (or import
``spizoo.models.resnet`` and ``spizoo.models.metrics`` before ``keras.saving.load_model``).
Importing this package itself loads no TensorFlow.
"""


def load_model(path, *, compile: bool = True):
    """Loads a ``.keras`` file saved by spizoo (registers spizoo's layers and metrics first); ``compile=False``
    leaves out the optimizer (for inference: :func:`spizoo.models.inference.load_for_inference`)."""
    import keras  # loads TensorFlow: only when used

    from spizoo.models import metrics, resnet  # noqa: F401 - register the serializable classes

    return keras.saving.load_model(path, compile=compile)
