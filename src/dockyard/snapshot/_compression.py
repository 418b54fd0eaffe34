"""Layer streams: detect the compression by magic bytes, decompress, hash what comes out.

The diff ID of a layer is the sha256 of its *uncompressed* tar bytes, so the hash sits on
the decompressed side, below tarfile: every byte tarfile consumes (and the padding it
leaves behind, see HashingReader.drain) goes through it exactly once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from ..compression import (
    Prefixed,
    Readable,
    TruncatedStream,
    detect_compression,
    open_decompressed,
    read_exactly,
)

__all__ = ["Prefixed", "Readable", "TruncatedStream", "detect_compression", "read_exactly"]

_CHUNK = 1 << 20


class HashingReader:
    """Reads the uncompressed tar and hashes it on the way through."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._sha256 = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size)
        self._sha256.update(data)
        self.count += len(data)
        return data

    def read_exactly(self, size: int) -> bytes:
        return read_exactly(self.read, size)

    def drain(self) -> None:
        """Hash the rest: tarfile stops at the first zero block, but the diff ID covers the
        whole uncompressed stream, padding included (Docker drains it the same way)."""
        while self.read(_CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self._sha256.hexdigest()


def open_layer_stream(stream: Readable) -> tuple[HashingReader, str]:
    """(a hashing reader over the uncompressed tar, the compression found)."""
    source, compression = open_decompressed(stream)
    return HashingReader(source), compression


class IteratorReader:
    """A readable stream over an iterator of byte chunks (a diff fed back into apply)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._offset = 0  # into _chunk: slicing a large chunk from the front is quadratic

    def read(self, size: int = -1, /) -> bytes:
        parts = []
        while size != 0:
            if self._offset >= len(self._chunk):
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._chunk, self._offset = chunk, 0
                continue
            end = len(self._chunk) if size < 0 else min(len(self._chunk), self._offset + size)
            parts.append(self._chunk[self._offset:end])
            if size > 0:
                size -= end - self._offset
            self._offset = end
        return b"".join(parts)
