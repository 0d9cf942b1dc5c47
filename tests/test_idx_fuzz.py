"""Property tests: the loader's IDX parsing (decompress, then parse_idx) either raises IdxError or returns what the header says."""

import gzip
import math
import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_bench.common.idx import IdxError, decompress, parse_idx


def read_idx_bytes(data: bytes):
    """What the loader does with a file's bytes, gzipped or raw."""
    return parse_idx(decompress(data))

# No deadline: per-example timing on a busy shared machine is noise, not a bug.
FUZZ = settings(max_examples=300, deadline=None)

# The IDX spec's type codes, restated here so the test is an independent oracle.
SPEC_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def header_shape(raw: bytes) -> tuple[int, ...]:
    ndim = raw[3]
    return struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])


@st.composite
def idx_files(draw):
    """IDX bytes built from a header, sometimes cut short, and a payload of about the right length."""
    known = draw(st.integers(0, 3)) > 0
    type_code = draw(st.sampled_from(sorted(SPEC_DTYPES)) if known else st.integers(0, 255))
    ndim = draw(st.integers(0, 4))
    # Mostly small dims; one file in ten has huge ones the payload can't possibly back.
    dims = st.integers(0, 2**32 - 1) if draw(st.integers(0, 9)) == 0 else st.integers(0, 5)
    shape = tuple(draw(st.lists(dims, min_size=ndim, max_size=ndim)))
    itemsize = np.dtype(SPEC_DTYPES.get(type_code, ">u1")).itemsize
    needed = math.prod(shape) * itemsize
    exact = needed <= 2048 and draw(st.integers(0, 3)) > 0
    length = needed if exact else draw(st.integers(0, min(needed + 16, 2048)))
    header = bytes([0, 0, type_code, ndim]) + struct.pack(f">{ndim}I", *shape)
    header = header[: draw(st.integers(0, len(header)))] if draw(st.integers(0, 9)) == 0 else header
    return header + draw(st.binary(min_size=length, max_size=length))


def spec_shape(data: bytes) -> tuple[int, ...] | None:
    """The shape the IDX spec gives ``data``, or None if it is not a valid IDX file."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in SPEC_DTYPES or data[3] == 0:
        return None
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        return None
    # Read the shape back from the bytes: a cut header plus payload can still be valid.
    shape = header_shape(data)
    needed = math.prod(shape) * np.dtype(SPEC_DTYPES[data[2]]).itemsize
    return shape if len(data) == 4 + 4 * ndim + needed else None


@FUZZ
@given(st.binary(max_size=200) | st.binary(max_size=40).map(gzip.compress))
def test_arbitrary_bytes_raise_idx_error_or_match_header(data):
    try:
        array = read_idx_bytes(data)
    except IdxError:
        return
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    assert array.shape == spec_shape(raw)  # None (never a shape) if raw is invalid


@FUZZ
@given(idx_files(), st.booleans())
def test_well_formed_headers_parse_exactly_or_raise(data, compress):
    expected_shape = spec_shape(data)
    source = gzip.compress(data) if compress else data
    if expected_shape is None:
        try:
            read_idx_bytes(source)
        except IdxError:
            return
        raise AssertionError("malformed IDX data was accepted")
    array = read_idx_bytes(source)
    spec = np.dtype(SPEC_DTYPES[data[2]])
    assert array.shape == expected_shape
    assert array.dtype == spec.newbyteorder("=")
    assert array.flags.writeable
    # Compare bytes, not values: NaN payloads must round-trip too.
    assert array.astype(spec).tobytes() == data[4 + 4 * data[3] :]


@FUZZ
@given(st.data())
def test_any_cut_or_garbled_gzip_stream_raises_idx_error(data):
    valid = bytes([0, 0, 0x08, 2]) + struct.pack(">2I", 3, 4) + bytes(range(12))
    stream = gzip.compress(valid)
    cut = data.draw(st.integers(0, len(stream) - 1))
    mutated = stream[:cut]
    if data.draw(st.booleans()):
        # Garble one byte past the gzip magic instead of cutting.
        index = data.draw(st.integers(2, len(stream) - 1))
        flip = data.draw(st.integers(1, 255))
        mutated = stream[:index] + bytes([stream[index] ^ flip]) + stream[index + 1 :]
        try:
            result = read_idx_bytes(mutated)
        except IdxError:
            return
        # A flip in gzip's unchecked header fields (mtime, OS) is harmless.
        assert result.tobytes() == bytes(range(12))
        return
    try:
        read_idx_bytes(mutated)
    except IdxError:
        return
    raise AssertionError(f"a {cut}-byte prefix of the gzip stream was accepted")


@FUZZ
@given(st.binary(min_size=1, max_size=16).filter(lambda b: b.strip(b"\x00")))
def test_trailing_garbage_after_gzip_member_raises(garbage):
    valid = bytes([0, 0, 0x08, 1, 0, 0, 0, 2, 7, 9])
    try:
        read_idx_bytes(gzip.compress(valid) + garbage)
    except IdxError:
        return
    # 16 bytes are too few for a second gzip member (at least 20), so this is always garbage.
    raise AssertionError("trailing garbage after the gzip stream was accepted")
