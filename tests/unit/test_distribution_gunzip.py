"""gzip layers inflated before the snapshotter reads them."""

from __future__ import annotations

import gzip
import io
import os

import pytest

from dockyard.distribution._gunzip import GunzipReader


def _read_all(data: bytes, size: int = 10240) -> bytes:
    reader = GunzipReader(io.BytesIO(data))
    out = bytearray()
    while chunk := reader.read(size):
        out += chunk
    return bytes(out)


def test_single_and_multi_member_streams() -> None:
    raw = os.urandom(3 << 20) + b"a" * (2 << 20)
    assert _read_all(gzip.compress(raw)) == raw
    assert _read_all(gzip.compress(raw[:1000]) + gzip.compress(raw[1000:])) == raw
    assert _read_all(gzip.compress(b"")) == b""
    assert _read_all(gzip.compress(raw), size=-1) == raw


def test_a_highly_compressed_stream_is_inflated_in_bounded_steps() -> None:
    reader = GunzipReader(io.BytesIO(gzip.compress(b"\0" * (64 << 20))))
    largest = 0
    total = 0
    while chunk := reader.read(-1):
        largest = max(largest, len(chunk))
        total += len(chunk)
    assert total == 64 << 20 and largest <= 4 << 20


@pytest.mark.parametrize(("data", "message"), [
    (gzip.compress(os.urandom(100_000))[:-100], "unexpected end"),
    (gzip.compress(b"payload") + b"garbage", "invalid data after"),
])
def test_truncated_or_trailing_garbage_is_an_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _read_all(data)


def test_corrupt_deflate_data_is_a_value_error() -> None:
    # Huffman-coded data (stored blocks of random bytes would inflate to other bytes: the
    # diff ID catches that, see test_the_crc_is_left_to_the_digests).
    data = bytearray(gzip.compress(b"".join(b"line %d\n" % i for i in range(50_000))))
    data[len(data) // 2:len(data) // 2 + 50] = b"\xff" * 50
    with pytest.raises(ValueError):
        _read_all(bytes(data))


class _Trickle:
    """A source that hands out a few bytes at a time (headers split across reads)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(self._step)


def _member(payload: bytes, flags: int = 0, extra: bytes = b"", name: bytes = b"",
            comment: bytes = b"") -> bytes:
    """A gzip member with the optional header fields of RFC 1952."""
    import struct
    import zlib

    header = b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\0\xff"
    if flags & 0x04:
        header += struct.pack("<H", len(extra)) + extra
    if flags & 0x08:
        header += name + b"\0"
    if flags & 0x10:
        header += comment + b"\0"
    if flags & 0x02:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflate.compress(payload) + deflate.flush()
    return header + body + struct.pack("<II", zlib.crc32(payload), len(payload) & 0xFFFFFFFF)


def test_optional_header_fields_and_headers_split_across_reads() -> None:
    payload = os.urandom(100_000) + b"z" * 100_000
    member = _member(payload, flags=0x02 | 0x04 | 0x08 | 0x10, extra=b"XY\x02\0ab",
                     name=b"layer.tar", comment=b"made by hand")
    assert gzip.decompress(member) == payload  # a valid member, as Python's gzip reads it
    for step in (1, 3, 7, 4096):
        reader = GunzipReader(_Trickle(member + _member(b"second"), step))
        out = bytearray()
        while chunk := reader.read(1 << 16):
            out += chunk
        assert bytes(out) == payload + b"second"


@pytest.mark.parametrize(("data", "message"), [
    (_member(b"payload")[:-4] + b"\0\0\0\0", "length mismatch"),
    (b"\x1f\x8b\x07" + _member(b"x")[3:], "invalid gzip header"),
    (_member(b"x", flags=0x20), "reserved flags"),
    (_member(b"x", flags=0x08, name=b"n")[:11], "in a header"),
    (_member(b"payload")[:-3], "in a trailer"),
    (b"\x1f\x8b\x08\x08" + b"\0" * 6 + b"n" * (2 << 20), "too long"),
])
def test_broken_framing_is_an_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _read_all(data)


def test_the_crc_is_left_to_the_digests() -> None:
    # The blob's sha256 and the diff ID are checked by the pull; a CRC-32 that does not
    # match (with the data intact) is not read.
    member = bytearray(_member(b"payload"))
    member[-8:-4] = b"\0\0\0\0"
    assert _read_all(bytes(member)) == b"payload"
