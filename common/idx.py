"""Reader for the IDX format that the MNIST-family files use.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the values in C order
and big-endian. Files may be gzipped; gzip is detected by its magic bytes
(1f 8b), never by the file name, because copies in the wild are renamed freely.

Every malformed input raises :class:`IdxError`; nothing here trusts the header
enough to allocate from it before checking it against the payload length.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian NumPy dtype (from the format's definition).
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class DataError(Exception):
    """A dataset is missing, unreadable, corrupt or of the wrong shape."""


class IdxError(DataError):
    """An IDX file (or its gzip wrapper) is malformed."""


def _label(path: str | os.PathLike | None) -> str:
    return os.fsdecode(path) if path is not None else "IDX data"


def decompress(data: bytes, path: str | os.PathLike | None = None) -> bytes:
    """Return ``data`` un-gzipped if it starts with the gzip magic, else unchanged.

    ``path`` only names the source in error messages. A damaged gzip stream
    (bad header, truncated, CRC mismatch, non-zero bytes after the last member)
    raises :class:`IdxError`.
    """
    if not data.startswith(GZIP_MAGIC):
        return bytes(data)
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise IdxError(f"{_label(path)}: bad gzip stream ({exc})") from exc


def read_bytes(path: str | os.PathLike) -> bytes:
    """Read the file at ``path`` and return its decompressed bytes.

    Raises :class:`IdxError` if the file cannot be read or its gzip stream is
    damaged. Use with :func:`parse_idx` to hash and parse with one decompression.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise IdxError(f"{_label(path)}: cannot read ({exc.strerror or exc})") from exc
    return decompress(data, path)


def parse_idx(data: bytes, path: str | os.PathLike | None = None) -> np.ndarray:
    """Parse uncompressed IDX bytes into a writable native-byte-order array.

    The array's shape is the header's dimensions and its dtype follows the
    header's type code (0x08 -> uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64). Raises :class:`IdxError`, naming ``path``
    when given, for: empty input, wrong magic, unknown type code, zero
    dimensions, truncated header, payload shorter than the header says
    (truncated) or longer (trailing garbage).
    """
    where = _label(path)
    if len(data) == 0:
        raise IdxError(f"{where}: empty")
    if len(data) < 4:
        raise IdxError(f"{where}: truncated header ({len(data)} of 4 magic bytes)")
    zero1, zero2, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise IdxError(
            f"{where}: wrong magic {data[:4].hex(' ')} (an IDX file starts with 00 00)"
        )
    dtype = IDX_DTYPES.get(type_code)
    if dtype is None:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise IdxError(f"{where}: unsupported type code 0x{type_code:02X} (known: {known})")
    if ndim == 0:
        raise IdxError(f"{where}: header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise IdxError(
            f"{where}: truncated header ({len(data)} of {header_size} bytes for {ndim} dimensions)"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    # Python ints: the product of four uint32 dims overflows int64.
    expected = dtype.itemsize
    for dim in shape:
        expected *= dim
    actual = len(data) - header_size
    if actual < expected:
        raise IdxError(
            f"{where}: truncated payload ({actual} of {expected} bytes for shape {shape})"
        )
    if actual > expected:
        raise IdxError(
            f"{where}: {actual - expected} bytes of trailing garbage after shape {shape}"
        )
    values = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_size)
    # astype copies: the result is writable and independent of ``data``.
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(shape)
