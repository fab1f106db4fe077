"""Models as they run for prediction: batch norm folded into the convolutions, at an inference precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spizoo.models import registry
from spizoo.models.inference import fold_batch_norm, load_for_inference
from spizoo.models.precision import global_policy

SMALL = (32, 32, 1)


def _trained_like(name: str, seed: int = 0):
    """A small network of ``name`` whose batch norms hold statistics far from their initial ones (as after
    training: the fold must use them, not the identity)."""
    keras.utils.set_random_seed(seed)
    blocks = (1, 1) if name.startswith("resnet10") else (1, 1, 1, 1)
    model = registry.build(name, input_shape=SMALL, stack_blocks=blocks)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            stats = [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.3, n), rng.normal(0, 0.3, n), rng.uniform(0.3, 3, n)]
            layer.set_weights(stats)
    return model


def _images(n: int = 8) -> tf.Tensor:
    return tf.constant(np.random.default_rng(1).normal(0, 1, (n, *SMALL)), tf.float32)


@pytest.mark.parametrize("name", ["resnet10_classifier", "resnet34_regressor"])
def test_folded_network_computes_the_inference_of_the_trained_one(name):
    model = _trained_like(name)
    x = _images()
    expected = model(x, training=False).numpy()
    folded = fold_batch_norm(model)
    kinds = {type(layer) for layer in folded.layers}
    assert not any(issubclass(k, keras.layers.BatchNormalization | keras.layers.Dropout) for k in kinds)
    convs = [la for la in folded.layers if isinstance(la, keras.layers.Conv2D)]
    assert convs and all(c.use_bias for c in convs)
    assert [la.name for la in convs] == [la.name for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    np.testing.assert_allclose(folded(x, training=False), expected, rtol=1e-5, atol=1e-6)
    # As exported and served: a graph, which TensorFlow optimises (fused conv + bias + ReLU or tanh, on oneDNN).
    np.testing.assert_allclose(tf.function(lambda images: folded(images))(x), expected, rtol=1e-5, atol=1e-6)
    # The trained model is left as it was.
    assert any(isinstance(la, keras.layers.BatchNormalization) for la in model.layers)
    np.testing.assert_array_equal(model(x, training=False), expected)


def test_a_conv_output_that_another_layer_takes_too_is_not_folded():
    inputs = keras.Input(SMALL)
    conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)
    norm = keras.layers.BatchNormalization()(conv)
    out = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([norm, conv]))
    model = keras.Model(inputs, out)
    model.layers[2].set_weights([np.full(4, 2.0), np.ones(4), np.full(4, 0.5), np.full(4, 4.0)])
    assert fold_batch_norm(model) is model


def test_a_model_without_batch_norm_is_returned_as_it_is():
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert fold_batch_norm(model) is model


@pytest.mark.parametrize("name", ["resnet10_classifier", "resnet34_regressor"])
def test_load_for_inference_at_each_precision(name, tmp_path):
    model = _trained_like(name, seed=3)
    model.save(tmp_path / "best.keras")
    x = _images()
    expected = model(x, training=False).numpy()
    exact = load_for_inference(tmp_path / "best.keras", "float32")
    np.testing.assert_allclose(exact(x), expected, rtol=1e-5, atol=1e-6)
    half = load_for_inference(tmp_path / "best.keras", "mixed_bfloat16")
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    convs = [la for la in half.layers if isinstance(la, keras.layers.Conv2D)]
    assert {c.compute_dtype for c in convs} == {"bfloat16"} and {c.kernel.dtype for c in convs} == {"float32"}
    out = tf.function(lambda images: half(images))(x)
    assert out.dtype == tf.float32
    # bfloat16 keeps 8 bits of mantissa: outputs in [-1, 1] or [0, 1] agree to a few hundredths.
    np.testing.assert_allclose(out, expected, atol=0.05)


def test_global_policy_is_restored_after_an_error():
    with pytest.raises(RuntimeError), global_policy("mixed_bfloat16"):
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        raise RuntimeError
    assert keras.mixed_precision.global_policy().name == "float32"
    with pytest.raises(ValueError, match="precision must be one of auto, float32"):
        load_for_inference("unused.keras", "bf16")
