"""Reading a dataset wherever TensorFlow reads: local paths with Python's own file functions (no TensorFlow
loaded for them), URLs through TensorFlow's file systems (``gs://``, ``ram://`` and any it registers), since
``tf.data`` reads the shards there too.

A scheme TensorFlow has no file system for (``s3://`` since TensorFlow 2.6, whose S3 support moved to
``tensorflow-io``, which has no build for this TensorFlow) is an error saying so and what to do instead.
Writing a dataset goes through Beam's file systems (:mod:`spizoo.beam_pipelines.storage`), which reach more
stores, ``s3://`` included.
"""

from __future__ import annotations

import builtins
import glob as _glob
import os
from typing import BinaryIO


def is_url(path) -> bool:
    """Whether ``path`` is a URL (``scheme://…``) rather than a local path."""
    return "://" in str(path)


def _gfile(path: str):
    """TensorFlow's ``tf.io.gfile`` for the URL ``path``.

    Raises:
        ValueError: if TensorFlow has no file system for its scheme, naming the path and the fix.
    """
    import tensorflow as tf  # TensorFlow loads in seconds: only for URLs, which only it reads

    scheme, known = path.split("://", 1)[0], tf.io.gfile.get_registered_schemes()  # no I/O: the registry
    if scheme not in known:
        readable = ", ".join(f"{k}://" for k in sorted(known) if k not in ("", "file"))
        raise ValueError(
            f"{path}: TensorFlow {tf.__version__} has no file system for {scheme}:// (it reads local paths and "
            f"{readable}), so it cannot train or evaluate from there; copy the dataset to a local or shared file "
            f"system (for s3://: `aws s3 sync {path.rstrip('/')} DIR`, or mount the bucket with mountpoint-s3 "
            "or s3fs) and give that path"
        ) from None
    return tf.io.gfile


def check(path) -> None:
    """Raises ``ValueError`` for a URL TensorFlow cannot read (:func:`_gfile`); a local path passes."""
    if is_url(path):
        _gfile(str(path))


def join(directory, name: str) -> str:
    return f"{str(directory).rstrip('/')}/{name}" if is_url(directory) else os.path.join(directory, name)


def exists(path) -> bool:
    path = str(path)
    return _gfile(path).exists(path) if is_url(path) else os.path.exists(path)


def glob(pattern) -> list[str]:
    """The sorted paths matching ``pattern``."""
    pattern = str(pattern)
    return sorted(_gfile(pattern).glob(pattern) if is_url(pattern) else _glob.glob(pattern))


def size(path) -> int:
    path = str(path)
    return _gfile(path).stat(path).length if is_url(path) else os.path.getsize(path)


def open(path, mode: str = "rb") -> BinaryIO:  # noqa: A001 - the module's reader, as builtins.open
    path = str(path)
    return _gfile(path).GFile(path, mode) if is_url(path) else builtins.open(path, mode)


def read(path) -> bytes:
    with open(path) as f:
        return f.read()
