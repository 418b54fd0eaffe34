"""Compressed streams as Docker recognises them (archive/DecompressStream): by magic bytes,
for image archives (image/), layer tarballs (snapshot/), imports and build contexts
(engine/) alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

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


_CHUNK = 1 << 20


class TruncatedStream(EOFError):
    """The compressed stream ended inside a frame."""


class ZstdFrames:
    """zstd frames one after another; unlike zstandard's stream_reader, a stream that ends
    inside a frame is an error here, not a quiet short read."""

    def __init__(self, source: Readable) -> None:
        import zstandard

        self._source = source
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame = self._decompressor.decompressobj()
        self._in_frame = False
        self._buffer = b""
        self._offset = 0  # into _buffer: slicing a large buffer from the front is quadratic
        self._pending = b""

    def read(self, size: int = -1, /) -> bytes:
        parts = []
        while size != 0:
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = b"", 0
                if not self._fill():
                    break
                continue
            end = len(self._buffer) if size < 0 else min(len(self._buffer), self._offset + size)
            parts.append(self._buffer[self._offset:end])
            if size > 0:
                size -= end - self._offset
            self._offset = end
        return b"".join(parts)

    def _fill(self) -> bool:
        chunk = self._pending or self._source.read(_CHUNK)
        self._pending = b""
        if not chunk:
            if self._in_frame:
                raise TruncatedStream("zstd stream ends inside a frame")
            return False
        self._in_frame = True
        self._buffer = self._frame.decompress(chunk)
        if self._frame.eof:
            # The rest of this chunk belongs to the next frame (or is trailing data).
            self._pending = self._frame.unused_data
            self._frame = self._decompressor.decompressobj()
            self._in_frame = False
        return True


def read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    """size bytes from read() (fewer only at the end of the stream)."""
    parts = []
    while size > 0:
        data = read(size)
        if not data:
            break
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


def corrupt_data_errors() -> tuple[type[Exception], ...]:
    """What the decompressors raise for bad or truncated data (besides OSError, which
    gzip raises for a bad header). A function: the modules load only when needed."""
    import lzma
    import zlib

    import zstandard

    return (EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


def open_decompressed(stream: Readable) -> tuple[Readable, str]:
    """`stream` through the decompressor its first bytes name, and that name ('gzip',
    'zstd', 'bzip2', 'xz', or 'none' for a plain stream, returned as it is)."""
    head = read_exactly(stream.read, MAGIC_LENGTH)
    kind = detect_compression(head)
    source: Any = Prefixed(head, stream)
    if kind == "gzip":
        import gzip

        return gzip.GzipFile(fileobj=source, mode="rb"), kind
    if kind == "zstd":
        return ZstdFrames(source), kind
    if kind == "bzip2":
        import bz2

        return bz2.BZ2File(source, mode="rb"), kind
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(source, mode="rb"), kind
    return source, kind
