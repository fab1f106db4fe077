"""Residual networks of the two seeds, one backbone class driven by a spec table.

- ``resnet10_classifier`` (seed 000 §4.1, fig. 3): a 3×3 stem and 2×2 max pooling, then residual blocks
  of two 3×3 conv layers with an identity shortcut, ``n`` conv layers at 32 channels and ``m`` at 64
  (default 4 + 4: with the stem and the dense layer, the paper's 10 layers; the 64-channel stack starts
  with stride 2 and a 1×1 projection shortcut); every conv followed by batch norm, dropout (0.25) and
  ReLU; L2 0.01 on conv kernels; global average pooling and a softmax over 5 classes (0–4+ particles).
- ``resnet34_regressor`` (seed 001 §3, fig. 3): a 7×7 stride-2 conv with 64 filters, 2×2 max pooling, stacks
  of 3, 4, 6 and 4 basic blocks with 64, 128, 256 and 512 filters, the first conv of each stack stride 2
  with a 1×1 projection shortcut, global average pooling, a dense layer to the 5 outputs (quaternion +
  radius); tanh activations throughout. (Standard ResNet-34 has 3 blocks in its last stack; the seed's 4
  are kept.)

Inputs are (H, W, 1) images; an optional :class:`Standardize` layer at the input holds the dataset's mean
and standard deviation images, so the exported graph preprocesses exactly as training did. Outputs are
float32 under any dtype policy.
"""

from __future__ import annotations

import keras
import numpy as np

from spizoo.core.task import ORIENTATION_SIZE, PARTICLE_COUNT
from spizoo.models.layers import ByteDropout, Conv2D, FusedBatchNormalization
from spizoo.models.registry import register

SPECS = {
    "resnet10": {
        "stem_filters": 32,
        "stem_kernel": 3,
        "stem_strides": 1,
        "stem_pool": 2,
        "stack_filters": (32, 64),
        "stack_blocks": (2, 2),
        "stack_strides": (1, 2),
        "activation": "relu",
        "dropout": 0.25,
        "l2": 0.01,
    },
    "resnet34": {
        "stem_filters": 64,
        "stem_kernel": 7,
        "stem_strides": 2,
        "stem_pool": 2,
        "stack_filters": (64, 128, 256, 512),
        "stack_blocks": (3, 4, 6, 4),
        "stack_strides": (2, 2, 2, 2),
        "activation": "tanh",
        "dropout": 0.0,
        "l2": 0.0,
    },
}


@keras.saving.register_keras_serializable("spizoo")
class Standardize(keras.layers.Layer):
    """``(x - mean) / max(std, eps)`` with per-pixel mean and std images of shape (H, W) held as weights."""

    def __init__(self, shape: tuple[int, int], eps: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.shape_hw = tuple(int(n) for n in shape)
        self.eps = float(eps)
        self.mean = self.add_weight(name="mean", shape=(*self.shape_hw, 1), initializer="zeros", trainable=False)
        self.std = self.add_weight(name="std", shape=(*self.shape_hw, 1), initializer="ones", trainable=False)

    def set_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean.assign(np.asarray(mean, np.float32).reshape(*self.shape_hw, 1))
        self.std.assign(np.asarray(std, np.float32).reshape(*self.shape_hw, 1))

    def call(self, x):
        return (x - keras.ops.cast(self.mean, x.dtype)) / keras.ops.cast(keras.ops.maximum(self.std, self.eps), x.dtype)

    def get_config(self):
        return {**super().get_config(), "shape": self.shape_hw, "eps": self.eps}


@keras.saving.register_keras_serializable("spizoo")
class ResNet(keras.Model):
    """A residual network from a :data:`SPECS` entry plus a thin head.

    Args:
        spec: key of :data:`SPECS`.
        input_shape: (H, W, 1).
        outputs: size of the head.
        head_activation: ``softmax`` (classifier), ``tanh`` (regressor) or ``linear``.
        stack_blocks: blocks per stack, overriding the spec (e.g. ``[2, 2]`` = the paper's (n, m) = (4, 4)).
        standardize: put a :class:`Standardize` layer holding dataset statistics at the input.
        dropout, l2: override the spec's regularisation.
        keras_layers: build with Keras's own Conv2D, BatchNormalization and Dropout instead of the faster equivalents
            of :mod:`spizoo.models.layers` (same weights and outputs: the training benchmark's baseline).
    """

    def __init__(
        self,
        spec: str = "resnet10",
        input_shape: tuple[int, int, int] = (128, 128, 1),
        outputs: int = 5,
        head_activation: str = "softmax",
        stack_blocks: tuple[int, ...] | None = None,
        standardize: bool = True,
        dropout: float | None = None,
        l2: float | None = None,
        keras_layers: bool = False,
        **kwargs,
    ):
        if spec not in SPECS:
            raise ValueError(f"unknown spec {spec!r}; known: {', '.join(SPECS)}")
        s = dict(SPECS[spec])
        blocks = tuple(stack_blocks) if stack_blocks is not None else s["stack_blocks"]
        if len(blocks) != len(s["stack_filters"]) or min(blocks) < 1:
            raise ValueError(
                f"stack_blocks must give >= 1 block for each of {len(s['stack_filters'])} stacks, got {blocks}"
            )
        drop = s["dropout"] if dropout is None else float(dropout)
        reg = s["l2"] if l2 is None else float(l2)
        act = s["activation"]
        regularizer = keras.regularizers.L2(reg) if reg else None
        norm = keras.layers.BatchNormalization if keras_layers else FusedBatchNormalization
        dropout_layer = keras.layers.Dropout if keras_layers else ByteDropout
        conv_layer = keras.layers.Conv2D if keras_layers else Conv2D

        def conv(x, filters, kernel, strides=1, name=None):
            return conv_layer(
                filters,
                kernel,
                strides=strides,
                padding="same",
                use_bias=False,
                kernel_regularizer=regularizer,
                name=name,
            )(x)

        def bn_drop_act(x):
            x = norm()(x)
            if drop:
                x = dropout_layer(drop)(x)
            return keras.layers.Activation(act)(x)

        inputs = keras.Input(shape=tuple(input_shape), name="image")
        x = inputs
        if standardize:
            x = Standardize(tuple(input_shape[:2]), name="standardize")(x)
        x = bn_drop_act(conv(x, s["stem_filters"], s["stem_kernel"], s["stem_strides"], name="stem_conv"))
        if s["stem_pool"]:
            x = keras.layers.MaxPooling2D(s["stem_pool"])(x)
        filters_in = s["stem_filters"]
        for filters, count, first_stride in zip(s["stack_filters"], blocks, s["stack_strides"], strict=True):
            for block in range(count):
                stride = first_stride if block == 0 else 1
                shortcut = x
                if stride != 1 or filters != filters_in:
                    shortcut = norm()(conv(x, filters, 1, stride))
                y = bn_drop_act(conv(x, filters, 3, stride))
                y = norm()(conv(y, filters, 3))
                x = keras.layers.Activation(act)(keras.layers.Add()([y, shortcut]))
                filters_in = filters
        x = keras.layers.GlobalAveragePooling2D()(x)
        logits = keras.layers.Dense(outputs, name="head")(x)
        out = keras.layers.Activation(head_activation, dtype="float32", name="output")(logits)
        super().__init__(inputs=inputs, outputs=out, **kwargs)
        self.spec = spec
        self.input_shape_ = tuple(int(n) for n in input_shape)
        self.n_outputs = int(outputs)
        self.head_activation = head_activation
        self.stack_blocks = blocks
        self.standardize = bool(standardize)
        self.dropout = dropout
        self.l2 = l2
        self.keras_layers = bool(keras_layers)

    def get_config(self):
        return {
            "name": self.name,
            "spec": self.spec,
            "input_shape": self.input_shape_,
            "outputs": self.n_outputs,
            "head_activation": self.head_activation,
            "stack_blocks": self.stack_blocks,
            "standardize": self.standardize,
            "dropout": self.dropout,
            "l2": self.l2,
            "keras_layers": self.keras_layers,
        }

    @classmethod
    def from_config(cls, config):
        # Saved before the layers of spizoo.models.layers: Keras stores weights under their layers' class names.
        return cls(**{"keras_layers": True, **config})


@register("resnet10_classifier", task=PARTICLE_COUNT)
def resnet10_classifier(input_shape=(128, 128, 1), classes: int = 5, stack_blocks=(2, 2), **kwargs) -> ResNet:
    """Seed 000's hit classifier: softmax over 0, 1, 2, 3, 4+ particles."""
    return ResNet("resnet10", input_shape, classes, "softmax", stack_blocks, name="resnet10_classifier", **kwargs)


@register("resnet34_regressor", task=ORIENTATION_SIZE)
def resnet34_regressor(input_shape=(128, 128, 1), outputs: int = 5, stack_blocks=None, **kwargs) -> ResNet:
    """Seed 001's regressor: (q0, q1, q2, q3, radius) scaled to [-1, 1], tanh throughout (``stack_blocks``
    overrides the seed's 3, 4, 6, 4 blocks per stack)."""
    return ResNet("resnet34", input_shape, outputs, "tanh", stack_blocks, name="resnet34_regressor", **kwargs)


def single_hit_score(probabilities):
    """The binary view of the classifier (seed 000): probability of exactly one particle."""
    return probabilities[..., 1]
