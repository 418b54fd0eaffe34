"""Layer streams: detect the compression by magic bytes, decompress, hash what comes out.

The diff ID of a layer is the sha256 of its *uncompressed* tar bytes, so the hash sits on
the decompressed side, below tarfile: every byte tarfile consumes (and the padding it
leaves behind, see HashingReader.drain) goes through it exactly once.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
from collections.abc import Callable, Iterator

import zstandard

from ..compression import Prefixed, Readable, detect_compression

__all__ = ["Prefixed", "Readable", "TruncatedStream", "detect_compression"]

_CHUNK = 1 << 20

class TruncatedStream(EOFError):
    """The compressed stream ended inside a frame."""


class _ZstdReader:
    """zstd frames one after another; unlike zstandard's stream_reader, a stream that ends
    inside a frame is an error here, not a quiet short read."""

    def __init__(self, source: Readable) -> None:
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
    head = b""
    while len(head) < 6:
        data = stream.read(6 - len(head))
        if not data:
            break
        head += data
    compression = detect_compression(head)
    source: Readable = Prefixed(head, stream)
    if compression == "gzip":
        source = gzip.GzipFile(fileobj=source, mode="rb")  # type: ignore[call-overload]
    elif compression == "zstd":
        source = _ZstdReader(source)
    elif compression == "bzip2":
        source = bz2.BZ2File(source, mode="rb")  # type: ignore[call-overload]
    elif compression == "xz":
        source = lzma.LZMAFile(source, mode="rb")  # type: ignore[arg-type]
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
