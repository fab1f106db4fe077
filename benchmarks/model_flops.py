"""Shared helpers of the model benchmarks: FLOP counts and this machine's measured matmul peak."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf


def forward_flops(model: keras.Model) -> float:
    """Multiply-adds × 2 of one forward pass of one image, from the conv and dense layers' shapes."""
    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            k = layer.kernel.shape
            total += 2.0 * h * w * k[0] * k[1] * k[2] * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += 2.0 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


def matmul_peak(dtype: str, n: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of an n×n matmul in ``dtype`` on this machine (the best of ``repeats``)."""
    a = tf.constant(np.random.default_rng(0).random((n, n)), dtype=dtype)
    f = tf.function(lambda x: tf.matmul(x, x))
    f(a).numpy()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).numpy()
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best
