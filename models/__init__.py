"""Keras 3 models registered by name, and their training.

Importing this package registers the custom layers, so ``keras.saving.load_model("run/best.keras")``
works after ``import spizoo.models``.
"""

from spizoo.models import resnet  # noqa: F401 - registers the serializable classes
from spizoo.models.registry import build, names

__all__ = ["build", "names"]
