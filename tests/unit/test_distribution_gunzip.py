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
    data = bytearray(gzip.compress(os.urandom(50_000) + b"x" * 50_000))
    data[len(data) // 2:len(data) // 2 + 50] = b"\xff" * 50
    with pytest.raises(ValueError):
        _read_all(bytes(data))
