"""The regression error measures of seed 001 appendix C as Keras metrics (registered, so saved models load).

On targets scaled to [-1, 1] each parameter's allowed range spans 2, so a parameter's relative error is
``|prediction - target| / 2``; per pattern, the mean and the maximum over the five parameters.
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable("spizoo")
def mean_relative_error(y_true, y_pred):
    """Mean over the five parameters of ``|y_pred - y_true| / 2`` (seed 001 appendix C)."""
    return keras.ops.mean(keras.ops.abs(y_pred - y_true) / 2.0, axis=-1)


@keras.saving.register_keras_serializable("spizoo")
def max_relative_error(y_true, y_pred):
    """Maximum over the five parameters of ``|y_pred - y_true| / 2`` (seed 001 appendix C)."""
    return keras.ops.max(keras.ops.abs(y_pred - y_true) / 2.0, axis=-1)


def relative_error_metrics() -> list:
    """Both measures as metrics, averaged over patterns."""
    return [
        keras.metrics.MeanMetricWrapper(mean_relative_error, name="mean_relative_error"),
        keras.metrics.MeanMetricWrapper(max_relative_error, name="max_relative_error"),
    ]
