"""Keras dtype policies by name, for training (``train.mixed_precision``) and for inference (``--precision``)."""

from __future__ import annotations

import contextlib
from pathlib import Path

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bfloat16 arithmetic (AVX-512 BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str) -> str:
    """The Keras dtype policy of a :data:`PRECISIONS` name; ``auto``: ``mixed_float16`` on a GPU,
    ``mixed_bfloat16`` on a CPU with bfloat16 arithmetic, else ``float32``."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name != "auto":
        return name
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"


@contextlib.contextmanager
def global_policy(name: str):
    """Keras's global dtype policy set to ``name`` (a :data:`PRECISIONS` name) inside the block: the
    layers built there compute in it."""
    import keras  # loads TensorFlow: only when used

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(resolve_precision(name))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
