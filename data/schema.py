"""The TFRecord schema: every feature key, ``encode_example`` / ``decode_example``, and the tf.data feature
spec (docs/ARCHITECTURE.md, convention 3). Beam writes with it; tf.data reads with it.

An example holds:

=====================  ========  ============================================================================
key                    type      content
=====================  ========  ============================================================================
``image``              bytes     raw little-endian pixels, row-major
``image_shape``        int64[2]  (rows, columns)
``image_dtype``        bytes     numpy dtype name, ``float32``
``label``              int64     hit class 0–4 (-1 for regression data)
``target``             float[5]  regression target (q0, q1, q2, q3, radius) scaled to [-1, 1] (zeros for hits)
``key``                bytes     ``<config-hash>/<model-index>/<shot>[/<copy>]``, unique and stable
``model_index``        int64     particle model (the unit of the split)
``augmentation``       bytes     filter applied (``none`` for unaugmented data)
``param/<name>``       any       every simulation parameter (float, int64 or bytes lists)
=====================  ========  ============================================================================

Examples are encoded here directly in the protobuf wire format, keys sorted, so that the same example is
the same bytes everywhere and Beam workers need not import TensorFlow; ``tf.train.Example`` parses them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

IMAGE = "image"
IMAGE_SHAPE = "image_shape"
IMAGE_DTYPE = "image_dtype"
LABEL = "label"
TARGET = "target"
KEY = "key"
MODEL_INDEX = "model_index"
AUGMENTATION = "augmentation"
PARAM_PREFIX = "param/"
TARGET_SIZE = 5


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int64 values are ten-byte varints
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:  # a length-delimited field
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _feature(value) -> bytes:
    """One ``tf.train.Feature``: BytesList (1), FloatList (2) or Int64List (3), packed."""
    if isinstance(value, (bytes, str)):  # before numpy, whose bytes type drops trailing zero bytes
        value = [value]
    if isinstance(value, list) and all(isinstance(v, (bytes, str)) for v in value):
        return _field(1, b"".join(_field(1, v.encode() if isinstance(v, str) else v) for v in value))
    arr = np.asarray(value)
    if arr.dtype.kind == "U":
        return _field(1, b"".join(_field(1, v.encode()) for v in np.atleast_1d(arr).tolist()))
    if arr.dtype.kind in "biu":
        packed = b"".join(_varint(int(v)) for v in arr.ravel())
        return _field(3, _field(1, packed))
    if arr.dtype.kind == "f":
        return _field(2, _field(1, arr.astype("<f4").tobytes()))
    raise TypeError(f"cannot encode a feature of dtype {arr.dtype}")


def encode_example(features: Mapping[str, object]) -> bytes:
    """Serialised ``tf.train.Example`` of ``{key: value}`` (numbers, arrays, str or bytes), keys sorted."""
    entries = b"".join(
        _field(1, _field(1, name.encode()) + _field(2, _feature(features[name]))) for name in sorted(features)
    )
    return _field(1, entries)


def example_features(
    image: np.ndarray,
    *,
    key: str,
    model_index: int,
    label: int = -1,
    target: np.ndarray | None = None,
    augmentation: str = "none",
    params: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The feature mapping of one pattern in this schema (pass it to :func:`encode_example`)."""
    image = np.ascontiguousarray(image, dtype="<f4")
    if image.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {image.shape}")
    out = {
        IMAGE: image.tobytes(),
        IMAGE_SHAPE: np.array(image.shape, dtype=np.int64),
        IMAGE_DTYPE: "float32",
        LABEL: np.int64(label),
        TARGET: np.zeros(TARGET_SIZE, np.float32) if target is None else np.asarray(target, np.float32),
        KEY: key,
        MODEL_INDEX: np.int64(model_index),
        AUGMENTATION: augmentation,
    }
    for name, value in (params or {}).items():
        out[PARAM_PREFIX + name] = value
    return out


def feature_spec():
    """The ``tf.io.parse_example`` spec of the fixed features (parameters are read with :func:`decode_example`)."""
    import tensorflow as tf  # TensorFlow loads in seconds: only when used

    return {
        IMAGE: tf.io.FixedLenFeature([], tf.string),
        IMAGE_SHAPE: tf.io.FixedLenFeature([2], tf.int64),
        LABEL: tf.io.FixedLenFeature([], tf.int64),
        TARGET: tf.io.FixedLenFeature([TARGET_SIZE], tf.float32),
        MODEL_INDEX: tf.io.FixedLenFeature([], tf.int64),
        KEY: tf.io.FixedLenFeature([], tf.string),
    }


def feature_spec_json() -> dict[str, dict]:
    """The schema as plain data, for ``dataset_info.json``."""
    return {
        IMAGE: {"type": "bytes", "encoding": "raw float32 little-endian, row-major"},
        IMAGE_SHAPE: {"type": "int64", "shape": [2]},
        IMAGE_DTYPE: {"type": "bytes"},
        LABEL: {"type": "int64", "shape": []},
        TARGET: {"type": "float32", "shape": [TARGET_SIZE]},
        KEY: {"type": "bytes"},
        MODEL_INDEX: {"type": "int64", "shape": []},
        AUGMENTATION: {"type": "bytes"},
        PARAM_PREFIX + "*": {"type": "float32 | int64 | bytes lists: the simulation parameters"},
    }


class ExampleError(ValueError):
    """A record is not an example of this schema; the message says which feature is wrong and how."""


_KINDS = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64", None: "no value"}


def decode_example(serialized: bytes) -> dict[str, object]:
    """Every feature of a serialised example as numpy values; ``image`` comes back as a 2D float32 array.

    Raises:
        ExampleError: (a ``ValueError``) for bytes that are not a ``tf.train.Example``, or an example without
            this schema's ``image``, ``image_shape``, ``label``, ``target``, ``model_index``, ``key``,
            ``image_dtype`` and ``augmentation`` of the right types, or whose image bytes do not fill
            ``image_shape``.
    """
    from google.protobuf.message import DecodeError  # with the protos below, only when used
    from tensorflow.core.example import example_pb2  # TensorFlow's protos: only when used

    try:
        ex = example_pb2.Example.FromString(serialized)
    except (DecodeError, RecursionError, ValueError) as err:
        raise ExampleError(f"a record of {len(serialized)} bytes is not a tf.train.Example ({err})") from None
    out: dict[str, object] = {}
    kinds: dict[str, str | None] = {}
    for name, feat in ex.features.feature.items():
        kind = kinds[name] = feat.WhichOneof("kind")
        if kind == "bytes_list":
            vals = list(feat.bytes_list.value)
            if name != IMAGE:
                try:
                    vals = [v.decode() for v in vals]
                except UnicodeDecodeError:
                    raise ExampleError(f"feature {name!r} holds bytes that are not UTF-8 text") from None
        elif kind == "float_list":
            vals = np.array(feat.float_list.value, dtype=np.float32)
        else:
            vals = np.array(feat.int64_list.value, dtype=np.int64)
        out[name] = vals

    def one(name: str, kind: str, count: int | None = 1):
        if name not in out:
            raise ExampleError(f"not an example of the spizoo schema: feature {name!r} is missing")
        if kinds[name] != kind or (count is not None and len(out[name]) != count):
            got = f"{_KINDS[kinds[name]]} x {len(out[name])}"
            want = _KINDS[kind] + (f" x {count}" if count is not None else "")
            raise ExampleError(f"feature {name!r} must be {want}, got {got}")
        return out[name]

    shape = tuple(int(v) for v in one(IMAGE_SHAPE, "int64_list", 2))
    image = one(IMAGE, "bytes_list")[0]
    if min(shape) < 0 or len(image) != 4 * shape[0] * shape[1]:
        raise ExampleError(
            f"feature {IMAGE!r} holds {len(image)} bytes; {IMAGE_SHAPE!r} {list(shape)} of float32 needs "
            f"{4 * shape[0] * shape[1] if min(shape) >= 0 else 'a size >= 0'}"
        )
    out[IMAGE] = np.frombuffer(image, dtype="<f4").reshape(shape)
    out[IMAGE_SHAPE] = np.array(shape, np.int64)
    for name in (LABEL, MODEL_INDEX):
        out[name] = int(one(name, "int64_list")[0])
    for name in (KEY, IMAGE_DTYPE, AUGMENTATION):
        out[name] = one(name, "bytes_list")[0]
    one(TARGET, "float_list", TARGET_SIZE)
    return out
