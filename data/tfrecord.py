"""TFRecord framing without TensorFlow (so Beam workers stay light).

A TFRecord file is a sequence of records, each ``uint64 length | uint32 masked-crc32c(length) | data |
uint32 masked-crc32c(data)`` (little endian), with TensorFlow's mask ``((c >> 15) | (c << 17)) + 0xa282ead8``.
Records are self-delimiting, so concatenating files gives a valid file: the Beam pipeline builds shards
that way. ``tf.data.TFRecordDataset`` reads what :func:`frame` writes (tested).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
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
    """The records of a TFRecord stream, checksums verified. A record's length is checked against what is
    left of a seekable stream before it is read, and a compressed stream that cannot be decompressed is a
    corrupt file, so that no damaged file takes memory it does not hold.

    Raises:
        CorruptRecordError: naming ``name`` and the byte offset of the bad record.
    """
    try:
        size = os.fstat(stream.fileno()).st_size if stream.seekable() and not _compressed(stream) else None
    except (OSError, AttributeError, ValueError):
        size = None
    offset = 0
    while True:
        header = _read(stream, 12, name, offset)
        if not header:
            return
        if len(header) < 12:
            raise CorruptRecordError(f"{name}: truncated record header at byte {offset}")
        (length,) = struct.unpack("<Q", header[:8])
        if struct.unpack("<I", header[8:])[0] != masked_crc(header[:8]):
            raise CorruptRecordError(f"{name}: bad length checksum at byte {offset}")
        if size is not None and offset + 16 + length > size:
            raise CorruptRecordError(
                f"{name}: truncated record at byte {offset} (it claims {length} bytes; the file has {size})"
            )
        data = _read(stream, length, name, offset)
        footer = _read(stream, 4, name, offset)
        if len(data) < length or len(footer) < 4:
            raise CorruptRecordError(f"{name}: truncated record at byte {offset}")
        if struct.unpack("<I", footer)[0] != masked_crc(data):
            raise CorruptRecordError(f"{name}: bad data checksum at byte {offset}")
        offset += 16 + length
        yield data


def _compressed(stream) -> bool:
    return isinstance(stream, gzip.GzipFile)


def _read(stream: BinaryIO, n: int, name: str, offset: int, chunk: int = 2**24) -> bytes:
    """``n`` bytes (fewer at the end), read in chunks so that a length read from a damaged stream whose size
    is unknown allocates only what the stream holds; decompression errors are :class:`CorruptRecordError`."""
    parts, left = [], n
    try:
        while left > 0:
            part = stream.read(min(left, chunk))
            if not part:
                break
            parts.append(part)
            left -= len(part)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise CorruptRecordError(f"{name}: cannot read or decompress the record at byte {offset} ({err})") from None
    return b"".join(parts)
