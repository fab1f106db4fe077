"""TFRecord framing without TensorFlow (so Beam workers stay light).

A TFRecord file is a sequence of records, each ``uint64 length | uint32 masked-crc32c(length) | data |
uint32 masked-crc32c(data)`` (little endian), with TensorFlow's mask ``((c >> 15) | (c << 17)) + 0xa282ead8``.
Records are self-delimiting, so concatenating files gives a valid file: the Beam pipeline builds shards
that way. ``tf.data.TFRecordDataset`` reads what :func:`frame` writes (tested).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import google_crc32c

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TensorFlow's masked CRC-32C of ``data``."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(record: bytes) -> bytes:
    """One record in TFRecord framing."""
    length = struct.pack("<Q", len(record))
    return length + struct.pack("<I", masked_crc(length)) + record + struct.pack("<I", masked_crc(record))


class CorruptRecordError(ValueError):
    """A TFRecord file is truncated or fails its checksums; the message names the file and offset."""


def read_records(stream: BinaryIO, name: str = "<stream>") -> Iterator[bytes]:
    """The records of a TFRecord stream, checksums verified.

    Raises:
        CorruptRecordError: naming ``name`` and the byte offset of the bad record.
    """
    offset = 0
    while True:
        header = stream.read(12)
        if not header:
            return
        if len(header) < 12:
            raise CorruptRecordError(f"{name}: truncated record header at byte {offset}")
        (length,) = struct.unpack("<Q", header[:8])
        if struct.unpack("<I", header[8:])[0] != masked_crc(header[:8]):
            raise CorruptRecordError(f"{name}: bad length checksum at byte {offset}")
        data = stream.read(length)
        footer = stream.read(4)
        if len(data) < length or len(footer) < 4:
            raise CorruptRecordError(f"{name}: truncated record at byte {offset}")
        if struct.unpack("<I", footer)[0] != masked_crc(data):
            raise CorruptRecordError(f"{name}: bad data checksum at byte {offset}")
        offset += 16 + length
        yield data
