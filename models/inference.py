"""Trained models as they run for prediction: built at an inference precision, with each batch norm folded into
the convolution before it (docs/BENCHMARKS.md, "Model inference").

At inference a batch norm is a fixed affine map per channel, ``y = γ (x − μ)/√(σ² + ε) + β``, and the
convolution before it is linear, so the two are one convolution with kernel ``w·s`` and bias ``β − μ·s``,
``s = γ/√(σ² + ε)`` per output channel (the seeds' ResNets: conv → batch norm → dropout → activation, seed 000
§4.1 and seed 001 §3). Dropout is the identity at inference and is left out. What was a convolution and a
handful of element-wise passes over its output becomes one convolution, which TensorFlow's graph optimiser
fuses with the bias, the residual addition and the ReLU after it (oneDNN's kernels on CPU).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from spizoo.models import load_model
from spizoo.models.precision import global_policy


def load_for_inference(path: str | Path, precision: str = "float32") -> keras.Model:
    """A ``.keras`` file saved by spizoo, built to compute in ``precision`` (a
    :data:`~spizoo.models.precision.PRECISIONS` name; outputs stay float32), batch norm folded
    (:func:`fold_batch_norm`), not compiled."""
    with global_policy(precision):
        return fold_batch_norm(load_model(path, compile=False))


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """A new model computing ``model(x, training=False)`` in which each batch norm on the last axis whose input
    is the output of a bias-free ``Conv2D``, taken by no other layer, is folded into that convolution, and dropout
    is left out. The same layer names and dtype policies; ``model`` itself is unchanged. A model without such a
    batch norm is returned as it is.
    """
    takers: dict[int, int] = {}  # id of a tensor of the model → how many layers take it
    for layer in model.layers:
        for tensor in keras.tree.flatten(layer.input):
            takers[id(tensor)] = takers.get(id(tensor), 0) + 1
    convs = {id(layer.output): layer for layer in model.layers if _bias_free_conv(layer)}
    into = {}  # id of a conv → the batch norm folded into it
    for norm in model.layers:
        conv = convs.get(id(norm.input)) if isinstance(norm, keras.layers.BatchNormalization) else None
        if conv is not None and norm.axis in (-1, 3) and takers[id(norm.input)] == 1:
            into[id(conv)] = norm
    if not into:
        return model
    folded_norms = {id(norm) for norm in into.values()}
    originals = {}  # id of a clone → (the clone, the layer it clones)

    def clone(layer):
        config = layer.get_config()
        if id(layer) in into:
            config["use_bias"] = True
        copy = layer.__class__.from_config(config)
        originals[id(copy)] = (copy, layer)
        return copy

    def call(copy, *args, **kwargs):
        layer = originals[id(copy)][1]
        if id(layer) in folded_norms or isinstance(layer, keras.layers.Dropout):
            return args[0]
        return copy(*args, **kwargs)

    folded = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for copy, layer in originals.values():
        if not copy.built or not copy.weights:
            continue  # left out (a folded batch norm, dropout), or without weights
        if id(layer) in into:
            scale, shift = _affine(into[id(layer)])
            kernel = np.asarray(layer.kernel, np.float64) * scale
            copy.set_weights([kernel.astype(np.float32), shift.astype(np.float32)])
        else:
            copy.set_weights(layer.get_weights())
    return folded


def _bias_free_conv(layer) -> bool:
    return isinstance(layer, keras.layers.Conv2D) and not layer.use_bias and layer.data_format == "channels_last"


def _affine(norm) -> tuple[np.ndarray, np.ndarray]:
    """Batch norm at inference as ``x·scale + shift`` per channel (float64)."""
    mean = np.asarray(norm.moving_mean, np.float64)
    gamma = np.asarray(norm.gamma, np.float64) if norm.scale else np.ones_like(mean)
    beta = np.asarray(norm.beta, np.float64) if norm.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(np.asarray(norm.moving_variance, np.float64) + norm.epsilon)
    return scale, beta - mean * scale
