"""Batch norm and dropout as the networks use them, computed as Keras's layers compute them but with
fewer, larger TensorFlow ops (docs/BENCHMARKS.md, "Model training step").

- :class:`FusedBatchNormalization`: in training, Keras 3's batch norm is a dozen element-wise ops in float32
  (moments, normalisation, their gradients, and casts around them under ``mixed_bfloat16``); this one is
  TensorFlow's fused kernel (oneDNN's on CPU) forward and backward, in the input's own dtype. Same weights,
  same moving-statistics update (the batch's biased variance, as Keras keeps it), same outputs to rounding.
  Inference is Keras's own.
- :class:`ByteDropout`: dropout at a rate of k/256 draws one random byte per element instead of one
  float: a quarter of the random-number work, and a keep mask of exactly the same Bernoulli(1 - rate).

Both are drop-in subclasses (same config, same variables), so models saved with Keras's layers load into
them and the other way round. On another Keras backend (JAX, torch: no TensorFlow installed) both compute
exactly as Keras's own layers do.
"""

from __future__ import annotations

import keras

FUSED_DTYPES = ("float32", "bfloat16", "float16")


def _tensorflow():
    """TensorFlow, when it is Keras's backend; None otherwise (these layers then are Keras's own)."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    return tf


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
