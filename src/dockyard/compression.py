"""Compressed streams as Docker recognises them (archive/DecompressStream): by magic bytes,
for image archives (image/) and layer tarballs (snapshot/) alike."""

from __future__ import annotations

from typing import Protocol

_MAGIC = (
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
MAGIC_LENGTH = max(len(magic) for magic, _ in _MAGIC)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def detect_compression(head: bytes) -> str:
    """'gzip', 'zstd', 'bzip2', 'xz' or 'none' for the first bytes of a stream."""
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return "none"


class Prefixed:
    """A stream with the bytes already read for the magic check put back in front."""

    def __init__(self, head: bytes, rest: Readable) -> None:
        self._head = head
        self._rest = rest

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._rest.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._rest.read(size)
