"""The convolution, fused batch norm and byte dropout compute what Keras's layers compute (models/layers.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from spizoo.models import layers, load_model, registry
from spizoo.models.layers import ByteDropout, Conv2D, FusedBatchNormalization, _conv2d_with_patch_gradient
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


@pytest.mark.parametrize(
    "shape, kernel, strides, padding",
    [
        ((3, 4, 4, 8), (3, 3, 8, 6), (1, 1), "same"),
        ((3, 5, 5, 8), (3, 3, 8, 6), (2, 2), "same"),  # odd size, stride 2: TensorFlow pads more at the end
        ((2, 6, 7, 4), (3, 1, 4, 5), (2, 1), "valid"),
        ((2, 4, 4, 8), (1, 1, 8, 6), (2, 2), "same"),
    ],
)
def test_patch_gradient_is_the_convolution_gradient(shape, kernel, strides, padding):
    """dK = patches(x)ᵀ · dy, and dx, equal TensorFlow's own gradients of the same convolution (float32)."""
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(0, 1, shape), tf.float32)
    k = tf.constant(rng.normal(0, 1, kernel), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, k])
        ours = _conv2d_with_patch_gradient(tf, x, k, strides, padding)
        theirs = tf.nn.conv2d(x, k, [1, *strides, 1], padding.upper())
        weight = tf.constant(rng.normal(0, 1, theirs.shape), tf.float32)  # a non-uniform output gradient
        losses = [tf.reduce_sum(o * weight) for o in (ours, theirs)]
    np.testing.assert_array_equal(ours, theirs)
    for a, b in zip(tape.gradient(losses[0], [x, k]), tape.gradient(losses[1], [x, k]), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_conv2d_takes_the_patch_gradient_only_on_small_bfloat16_maps_in_training(tmp_path, monkeypatch):
    calls = []
    counted = lambda *a: calls.append(a) or _conv2d_with_patch_gradient(*a)  # noqa: E731
    monkeypatch.setattr(layers, "_conv2d_with_patch_gradient", counted)
    keras.utils.set_random_seed(0)
    args = {"strides": 2, "padding": "same", "use_bias": True, "activation": "tanh", "dtype": "mixed_bfloat16"}
    ours, theirs = Conv2D(16, 3, **args), keras.layers.Conv2D(16, 3, **args)
    small, large = (np.random.default_rng(6).normal(0, 1, (4, s, s, 32)).astype(np.float32) for s in (8, 16))
    for layer in (ours, theirs):
        layer.build(small.shape)
    ours.set_weights([w + 0.1 for w in theirs.get_weights()])  # a bias that is not zero
    theirs.set_weights(ours.get_weights())
    assert ours._patch_gradient(tf.constant(small, tf.bfloat16))  # 4 × 4 output positions
    assert not ours._patch_gradient(tf.constant(large, tf.bfloat16))  # 8 × 8
    assert not ours._patch_gradient(tf.constant(small))  # float32: oneDNN's own
    with tf.GradientTape(persistent=True) as tape:
        outs = [layer(small, training=True) for layer in (ours, theirs)]
        losses = [tf.reduce_sum(tf.cast(o, tf.float32) * tf.range(1.0, 17.0)) for o in outs]
    assert outs[0].dtype == tf.bfloat16 and len(calls) == 1
    np.testing.assert_array_equal(outs[0], outs[1])
    grads = [tape.gradient(loss, m.trainable_weights) for loss, m in zip(losses, (ours, theirs), strict=True)]
    for a, b in zip(*grads, strict=True):
        assert a.dtype == tf.float32  # reaches the float32 variables
        np.testing.assert_allclose(a, b, rtol=0.02, atol=0.02 * float(tf.reduce_max(tf.abs(b))))
    np.testing.assert_array_equal(ours(small, training=False), theirs(small, training=False))
    assert len(calls) == 1  # inference is Keras's own
    # Saved under Keras's class name: a model of these loads Keras's weights files and the other way round.
    model = keras.Sequential([keras.Input(small.shape[1:]), Conv2D(4, 3)])
    model.save_weights(tmp_path / "ours.weights.h5")
    plain = keras.Sequential([keras.Input(small.shape[1:]), keras.layers.Conv2D(4, 3)])
    plain.load_weights(tmp_path / "ours.weights.h5")
    np.testing.assert_array_equal(plain.get_weights()[0], model.get_weights()[0])


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
