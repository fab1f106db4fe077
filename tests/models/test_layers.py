"""The fused batch norm and byte dropout compute what Keras's layers compute (models/layers.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spizoo.models import load_model, registry
from spizoo.models.layers import ByteDropout, FusedBatchNormalization
from spizoo.models.resnet import ResNet

SMALL = (32, 32, 1)


def _pair(**kwargs):
    """Keras's batch norm and the fused one, built on the same input, with the same (non-trivial) weights."""
    ours, theirs = FusedBatchNormalization(**kwargs), keras.layers.BatchNormalization(**kwargs)
    for layer in (ours, theirs):
        layer.build((4, 6, 5, 3))
    rng = np.random.default_rng(0)
    weights = [rng.normal(1, 0.3, 3), rng.normal(0, 0.3, 3), rng.normal(0.5, 0.1, 3), rng.uniform(0.5, 2, 3)]
    ours.set_weights([w.astype(np.float32) for w in weights])
    theirs.set_weights([w.astype(np.float32) for w in weights])
    return ours, theirs


def test_fused_batch_norm_trains_and_infers_as_keras_does():
    ours, theirs = _pair(momentum=0.9)
    x = tf.constant(np.random.default_rng(1).normal(3, 2, (4, 6, 5, 3)), tf.float32)
    for training in (True, False):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            outs = [layer(x, training=training) for layer in (ours, theirs)]
            losses = [tf.reduce_sum(tf.sin(o)) for o in outs]
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-5)
        for layer, loss in zip((ours, theirs), losses, strict=True):
            layer.grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        for a, b in zip(ours.grads, theirs.grads, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # One training call moved the moving statistics alike: mean and the batch's biased variance, momentum 0.9.
    np.testing.assert_allclose(ours.moving_mean, theirs.moving_mean, rtol=1e-6)
    np.testing.assert_allclose(ours.moving_variance, theirs.moving_variance, rtol=1e-5)
    assert not np.allclose(theirs.moving_mean, [0.5] * 3, atol=0.05)  # they did move


def test_fused_batch_norm_in_bfloat16_and_what_it_leaves_to_keras():
    _, theirs = _pair()
    ours = FusedBatchNormalization(dtype="mixed_bfloat16")
    ours.build((4, 6, 5, 3))
    ours.set_weights(theirs.get_weights())
    x = np.random.default_rng(2).normal(0, 1, (4, 6, 5, 3)).astype(np.float32)
    out = ours(x, training=True)
    assert out.dtype == tf.bfloat16 and ours.gamma.dtype == "float32"  # bfloat16 data, float32 weights
    np.testing.assert_allclose(tf.cast(out, tf.float32), theirs(x, training=True), atol=0.05)
    flat = tf.constant(x.reshape(4, -1))  # 2-D inputs are Keras's own path
    assert not ours._fusable(flat, None) and ours._fusable(tf.constant(x), None)
    plain = keras.layers.BatchNormalization()(flat, training=True)
    np.testing.assert_allclose(FusedBatchNormalization()(flat, training=True), plain, atol=1e-6)


def test_byte_dropout_keeps_exactly_three_quarters_scaled_by_four_thirds():
    keras.utils.set_random_seed(0)
    layer = ByteDropout(0.25)
    x = tf.ones((64, 64, 64, 8))
    y = layer(x, training=True).numpy()
    kept = y != 0
    n = kept.size
    assert abs(kept.mean() - 0.75) < 5 * np.sqrt(0.75 * 0.25 / n)  # Bernoulli(0.75), 5 standard errors
    np.testing.assert_array_equal(y[kept], np.float32(4 / 3))
    assert not np.array_equal(kept, layer(x, training=True).numpy() != 0)  # a new mask every call
    np.testing.assert_array_equal(layer(x, training=False), x)
    for odd in range(1, 7):  # sizes not a multiple of the four bytes a random word gives
        assert layer(tf.ones((odd, 1, 1, 1)), training=True).shape == (odd, 1, 1, 1)
    keras.utils.set_random_seed(3)
    first = ByteDropout(0.25)(x, training=True)
    keras.utils.set_random_seed(3)
    np.testing.assert_array_equal(first, ByteDropout(0.25)(x, training=True))  # seeded runs repeat


def test_byte_dropout_leaves_other_rates_to_keras():
    keras.utils.set_random_seed(0)
    x = tf.ones((32, 32, 32, 4))
    y = ByteDropout(0.3)(x, training=True).numpy()  # 0.3 is not k/256: Keras's float draws
    assert abs((y != 0).mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)


@pytest.mark.parametrize("name", ["resnet10_classifier", "resnet34_regressor"])
def test_the_networks_with_either_layers_are_the_same_function(name, tmp_path):
    """Weights of a network built with Keras's layers, set into the default one: the same outputs and the
    same training gradients (dropout off), and an old-style saved model still loads."""
    keras.utils.set_random_seed(0)
    blocks = (1, 1) if name.startswith("resnet10") else (1, 1, 1, 1)
    theirs = registry.build(name, input_shape=SMALL, stack_blocks=blocks, keras_layers=True, dropout=0.0)
    ours = registry.build(name, input_shape=SMALL, stack_blocks=blocks, dropout=0.0)
    assert [w.shape for w in ours.weights] == [w.shape for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    x = tf.constant(np.random.default_rng(4).normal(0, 1, (8, *SMALL)), tf.float32)
    for training in (False, True):
        with tf.GradientTape(persistent=True) as tape:
            outs = [m(x, training=training) for m in (ours, theirs)]
            losses = [tf.reduce_sum(o * tf.range(1.0, 6.0)) for o in outs]
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-5)
        g_ours = tape.gradient(losses[0], ours.trainable_weights)
        g_theirs = tape.gradient(losses[1], theirs.trainable_weights)
        for a, b in zip(g_ours, g_theirs, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4 * float(tf.reduce_max(tf.abs(b))) + 1e-6)
    for policy in ("float32", "mixed_bfloat16"):  # as exported and served: a graph, which TensorFlow optimises
        keras.mixed_precision.set_global_policy(policy)
        try:
            graph = registry.build(name, input_shape=SMALL, stack_blocks=blocks)
            graph.set_weights(theirs.get_weights())
            served = tf.function(lambda images, m=graph: m(images, training=False))(x)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        np.testing.assert_allclose(served, theirs(x), rtol=0.05, atol=0.02)
    ours.save(tmp_path / "ours.keras")
    loaded = load_model(tmp_path / "ours.keras")
    assert not loaded.keras_layers
    np.testing.assert_allclose(loaded(x), ours(x), rtol=1e-6)
    # A config saved before these layers (no keras_layers) rebuilds with Keras's, whose names its weights have.
    old = {k: v for k, v in theirs.get_config().items() if k != "keras_layers"}
    assert ResNet.from_config(old).keras_layers
