import keras
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from spizoo.models import registry
from spizoo.models.vgg import fold_logistic_regression


def test_folded_logistic_regression_equals_sklearn_probabilities():
    rng = np.random.default_rng(0)
    inputs = keras.Input((6,))
    features = keras.Model(inputs, keras.layers.Dense(10, name="f")(inputs), name="toy_features")
    x = rng.normal(size=(200, 6)).astype(np.float32)
    f = features(x).numpy()
    y = (f[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(int)
    clf = LogisticRegression(C=1.0).fit(f, y)
    folded = fold_logistic_regression(features, clf)
    np.testing.assert_allclose(folded(x).numpy(), clf.predict_proba(f)[:, 1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="coefficients of shape"):
        fold_logistic_regression(features, LogisticRegression().fit(f[:, :3], y))


def test_vgg16_features_are_fc1_and_fc2_frozen_and_never_downloaded(tmp_path):
    model = registry.build("vgg16_features", weights=None)
    assert model.output.shape[-1] == 8192 and not model.trainable_weights
    out = model(np.zeros((1, 224, 224, 3), np.float32)).numpy()
    assert out.shape == (1, 8192) and (out >= 0).all()  # both fc layers end in ReLU
    with pytest.raises(FileNotFoundError, match="never downloads"):
        registry.build("vgg16_features", weights=str(tmp_path / "missing.h5"))
    with pytest.raises(ValueError, match="224x224x3"):
        registry.build("vgg16_features", input_shape=(128, 128, 1))


def test_folded_probability_stays_float32_under_mixed_bfloat16():
    rng = np.random.default_rng(1)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        inputs = keras.Input((6,))
        features = keras.Model(inputs, keras.layers.Dense(10, name="f")(inputs))
        f = np.asarray(features(rng.normal(size=(50, 6))), np.float32)
        clf = LogisticRegression().fit(f, f[:, 0] > 0)
        out = fold_logistic_regression(features, clf)(rng.normal(size=(50, 6)))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert out.dtype == "float32"
    assert len(np.unique(np.asarray(out))) == 50  # not rounded to bfloat16's 8-bit mantissa
