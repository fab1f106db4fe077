"""Convolution, batch norm and dropout as the networks use them, computed as Keras's layers compute them but
with faster TensorFlow ops (docs/BENCHMARKS.md, "Model training step").

- :class:`Conv2D`: in bfloat16 training on small output maps (at most :data:`PATCH_GRADIENT_POSITIONS`
  positions: ResNet-34's last two stacks), the kernel's gradient is one matrix product of the input's patches
  with the output's gradient, ``dK = patches(x)ᵀ · dy``, instead of oneDNN's ``Conv2DBackpropFilter``, which
  for these shapes runs up to 2.2× slower in bfloat16 than in float32 (benchmarks/conv_gradient.py). The same sum over
  batch and positions, in another order; forward and input gradient are TensorFlow's own.

- :class:`FusedBatchNormalization`: in training, Keras 3's batch norm is a dozen element-wise ops in float32
  (moments, normalisation, their gradients, and casts around them under ``mixed_bfloat16``); this one is
  TensorFlow's fused kernel (oneDNN's on CPU) forward and backward, in the input's own dtype. Same weights,
  same moving-statistics update (the batch's biased variance, as Keras keeps it), same outputs to rounding.
  Inference is Keras's own.
- :class:`ByteDropout`: dropout at a rate of k/256 draws one random byte per element instead of one
  float: a quarter of the random-number work, and a keep mask of exactly the same Bernoulli(1 - rate).

All are drop-in subclasses (same config, same variables), so models saved with Keras's layers load into
them and the other way round; :class:`Conv2D` keeps Keras's class name, under which a saved model files a
layer's weights. On another Keras backend (JAX, torch: no TensorFlow installed) all compute exactly as
Keras's own layers do.
"""

from __future__ import annotations

import keras

FUSED_DTYPES = ("float32", "bfloat16", "float16")
# Output maps up to this many positions (4 × 4) take the patch-matmul kernel gradient in bfloat16: where it was
# faster on every shape of ResNet-34 measured (8 × 8 maps were not: benchmarks/conv_gradient.py).
PATCH_GRADIENT_POSITIONS = 16


def _tensorflow():
    """TensorFlow, when it is Keras's backend; None otherwise (these layers then are Keras's own)."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


def patch_kernel_gradient(tf, x, dy, kernel_shape, strides, padding: str):
    """The kernel gradient of an NHWC convolution (no dilation) as ``patches(x)ᵀ · dy``: the input's
    k_h × k_w × C_in patches at each output position (``tf.image.extract_patches``, ordered as the kernel's
    first three axes), multiplied with the output's gradient ``dy``, summed over batch and positions."""
    k_h, k_w, c_in, c_out = kernel_shape
    step = [1, *strides, 1]
    patches = tf.image.extract_patches(x, [1, k_h, k_w, 1], step, [1, 1, 1, 1], padding.upper())
    dk = tf.matmul(tf.reshape(patches, (-1, k_h * k_w * c_in)), tf.reshape(dy, (-1, c_out)), transpose_a=True)
    return tf.reshape(dk, kernel_shape)


def _conv2d_with_patch_gradient(tf, x, kernel, strides, padding: str):
    """``tf.nn.conv2d(x, kernel)`` (NHWC, no dilation) whose kernel gradient is
    :func:`patch_kernel_gradient`; its input gradient is TensorFlow's."""
    step, pad = [1, *strides, 1], padding.upper()

    @tf.custom_gradient
    def conv(x, kernel):
        def grad(dy):
            dx = tf.raw_ops.Conv2DBackpropInput(
                input_sizes=tf.shape(x), filter=kernel, out_backprop=dy, strides=step, padding=pad
            )
            return dx, patch_kernel_gradient(tf, x, dy, kernel.shape, strides, padding)

        return tf.nn.conv2d(x, kernel, step, pad), grad

    return conv(x, kernel)


@keras.saving.register_keras_serializable("spizoo")
class Conv2D(keras.layers.Conv2D):
    """:class:`keras.layers.Conv2D` whose training calls in bfloat16 with at most
    :data:`PATCH_GRADIENT_POSITIONS` output positions take the kernel gradient as one matrix product
    (:func:`_conv2d_with_patch_gradient`); every other call is Keras's own. Setting an instance's
    ``patch_gradient_positions`` to 0 turns it off (the training benchmark's comparison)."""

    patch_gradient_positions = PATCH_GRADIENT_POSITIONS

    def _patch_gradient(self, inputs) -> bool:
        if (
            keras.backend.standardize_dtype(inputs.dtype) != "bfloat16"
            or self.data_format != "channels_last"
            or self.padding not in ("same", "valid")
            or tuple(self.dilation_rate) != (1, 1)
            or self.groups != 1
        ):
            return False
        h, w = self.compute_output_shape(inputs.shape)[1:3]
        return h is not None and w is not None and h * w <= self.patch_gradient_positions

    def call(self, inputs, training=None):
        tf = _tensorflow()
        if tf is None or not training or not self._patch_gradient(inputs):
            return super().call(inputs)
        kernel = tf.cast(tf.convert_to_tensor(self.kernel), inputs.dtype)
        outputs = _conv2d_with_patch_gradient(tf, inputs, kernel, self.strides, self.padding)
        if self.use_bias:
            outputs = outputs + tf.cast(self.bias, outputs.dtype)
        return self.activation(outputs)


@keras.saving.register_keras_serializable("spizoo")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """:class:`keras.layers.BatchNormalization` whose training calls on the last axis of 4-D inputs run
    ``FusedBatchNormV3``; inference and anything else (masks, renorm, synchronized, other axes) is Keras's own."""

    def _fusable(self, inputs, mask) -> bool:
        axis = self.axis[0] if isinstance(self.axis, list | tuple) and len(self.axis) == 1 else self.axis
        return (
            mask is None
            and len(inputs.shape) == 4
            and axis in (-1, 3)
            and not self.renorm
            and not self.synchronized
            and keras.backend.standardize_dtype(inputs.dtype) in FUSED_DTYPES
        )

    def call(self, inputs, training=None, mask=None):
        tf = _tensorflow()
        if tf is None or not (training and self.trainable) or not self._fusable(inputs, mask):
            # Inference is Keras's own: a few element-wise ops with the moving statistics, and TensorFlow's graph
            # optimiser would fuse FusedBatchNormV3 with a following tanh, which its CPU kernels cannot run.
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones((channels,), tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros((channels,), tf.float32)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
        )
        count = tf.cast(tf.size(inputs) // channels, tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # the kernel's is unbiased, Keras's not
        m = self.momentum
        self.moving_mean.assign(tf.cast(self.moving_mean, tf.float32) * m + mean * (1.0 - m))
        self.moving_variance.assign(tf.cast(self.moving_variance, tf.float32) * m + variance * (1.0 - m))
        return tf.cast(outputs, self.compute_dtype)


@keras.saving.register_keras_serializable("spizoo")
class ByteDropout(keras.layers.Dropout):
    """:class:`keras.layers.Dropout` whose keep mask comes from random bytes when ``rate`` is a multiple of
    1/256 (0.25 is): an element is kept when its byte is ≥ 256·rate, with probability exactly 1 − rate,
    and kept elements are scaled by 1/(1 − rate). Other rates and noise shapes use Keras's own."""

    def call(self, inputs, training=False):
        tf, threshold = _tensorflow(), self.rate * 256
        whole = threshold == int(threshold)
        if tf is None or not (training and self.rate > 0) or self.noise_shape is not None or not whole:
            return super().call(inputs, training=training)
        size = tf.size(inputs)
        seed = tf.cast(tf.math.floormod(self.seed_generator.next(), tf.int32.max - 1), tf.int32)  # as Keras's
        words = tf.random.stateless_uniform([(size + 3) // 4], seed=seed, minval=None, maxval=None, dtype=tf.uint32)
        bytes_ = tf.reshape(tf.bitcast(words, tf.uint8), [-1])[:size]
        keep = tf.reshape(bytes_ >= int(threshold), tf.shape(inputs))
        scale = tf.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return tf.where(keep, inputs * scale, tf.zeros_like(inputs))
