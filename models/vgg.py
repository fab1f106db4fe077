"""VGG16 features and a logistic-regression head (seed 000 §4.2, §5.2).

``vgg16_features``: ``keras.applications.VGG16`` with its top; the outputs of both 4096-unit fully
connected layers, concatenated, are an 8192-D feature vector. The network is frozen. ImageNet weights come
from a local file the user names (``options: {weights: /path/vgg16_weights_tf_dim_ordering_tf_kernels.h5}``);
nothing is downloaded, and ``weights: null`` gives random weights (for tests). Inputs are the data
pipeline's ``view: vgg`` images (224×224×3, caffe preprocessing).

:func:`fold_logistic_regression` turns a scikit-learn ``LogisticRegression`` (L2, C = 1) fitted on those
features into a ``Dense`` sigmoid layer on top of the extractor, so features and classifier are one
servable Keras model.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from spizoo.core.task import SINGLE_HIT
from spizoo.models.registry import register

FEATURE_LAYERS = ("fc1", "fc2")
FEATURES = 8192


@register("vgg16_features", task=SINGLE_HIT, trained_by="logistic_regression")
def vgg16_features(weights: str | None = None, input_shape=(224, 224, 3), **_unused) -> keras.Model:
    """The frozen VGG16 feature extractor: image (224, 224, 3) → 8192 features (fc1 ‖ fc2).

    Raises:
        FileNotFoundError: if ``weights`` names a file that does not exist.
    """
    if tuple(input_shape) != (224, 224, 3):
        raise ValueError(f"VGG16 with its top needs 224x224x3 inputs (data.view: vgg), got {tuple(input_shape)}")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(
            f"VGG16 weights file not found: {weights} (spizoo never downloads weights; give a local .h5 file "
            "or weights: null)"
        )
    base = keras.applications.VGG16(include_top=True, weights=None, input_shape=(224, 224, 3))
    if weights is not None:
        base.load_weights(weights)
    features = keras.layers.Concatenate(name="features")([base.get_layer(n).output for n in FEATURE_LAYERS])
    model = keras.Model(base.input, features, name="vgg16_features")
    model.trainable = False
    return model


def fold_logistic_regression(features: keras.Model, classifier) -> keras.Model:
    """``features`` followed by a Dense sigmoid layer holding a fitted binary ``LogisticRegression``'s
    ``coef_`` and ``intercept_``: its output equals ``classifier.predict_proba(f)[:, 1]``."""
    coef = np.asarray(classifier.coef_, np.float32)
    if coef.shape != (1, features.output.shape[-1]):
        raise ValueError(
            f"classifier has coefficients of shape {coef.shape}, expected (1, {features.output.shape[-1]})"
        )
    head = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="single_hit_probability")
    out = keras.layers.Reshape((), dtype="float32", name="single_hit")(head(features.output))
    model = keras.Model(features.input, out, name=f"{features.name}_logistic")
    head.set_weights([coef.T, np.asarray(classifier.intercept_, np.float32)])
    return model
