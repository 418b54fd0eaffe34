"""gzip layers decompressed in large chunks before the snapshotter reads them.

The snapshotter takes a compressed stream as well, but reads it through the gzip module's
layers of Python calls; inflating a megabyte at a time here and handing over plain tar
makes unpacking about a third faster. The gzip framing (RFC 1952) is read here and the
deflate data inflated raw: zlib's own gzip mode would compute the CRC-32 of every byte,
which a pull does not need (the blob's sha256 is verified before the layer is published,
and the snapshotter checks the sha256 of the uncompressed tar, the diff ID, against the
image's config); the length in each member's trailer is still checked. Multi-member
streams are followed; anything but another gzip member after one is an error, as in Go's
gzip reader.
"""

from __future__ import annotations

import zlib
from enum import Enum

from ..compression import Readable

_CHUNK = 1 << 20
_MAX_OUTPUT = 4 << 20
_MAX_HEADER = 1 << 20  # a longer file name or comment in a header is not a layer's
_GZIP_MAGIC = b"\x1f\x8b"
_DEFLATE = 8
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT, _FRESERVED = 0x02, 0x04, 0x08, 0x10, 0xE0
_TRAILER = 8  # CRC-32 and ISIZE, little-endian


class _State(Enum):
    MEMBER = "between members"
    HEADER = "in a header"
    BODY = "in the data"
    TRAILER = "in a trailer"


def header_length(data: bytes) -> int | None:
    """The length of the gzip member header data starts with; None when data is too
    short to tell. ValueError if it is not a gzip header."""
    if data[:2] != _GZIP_MAGIC[:len(data[:2])] or (len(data) > 2 and data[2] != _DEFLATE):
        raise ValueError("invalid gzip header")
    if len(data) < 10:
        return None
    flags = data[3]
    if flags & _FRESERVED:
        raise ValueError("invalid gzip header (reserved flags set)")
    position = 10
    if flags & _FEXTRA:
        if len(data) < position + 2:
            return None
        position += 2 + int.from_bytes(data[position:position + 2], "little")
    for flag in (_FNAME, _FCOMMENT):
        if flags & flag:
            end = data.find(b"\0", position)
            if end < 0:
                return None
            position = end + 1
    if flags & _FHCRC:
        position += 2
    return position if len(data) >= position else None


class GunzipReader:
    def __init__(self, source: Readable) -> None:
        self._source = source
        self._state = _State.MEMBER
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._member_size = 0  # bytes inflated from the current member
        self._pending = b""  # compressed bytes read but not used yet
        self._buffer = b""
        self._offset = 0
        self._eof = False
        self._started = False

    def _more(self) -> bool:
        data = self._source.read(_CHUNK)
        if not data:
            return False
        self._pending = self._pending + data if self._pending else data
        return True

    def _fill(self) -> None:
        while self._offset >= len(self._buffer) and not self._eof:
            if self._state is _State.BODY:
                self._inflate()
            elif self._state is _State.MEMBER:
                if not self._pending and not self._more():
                    self._eof = True  # the end of the stream, between two members
                    return
                if self._started and not self._pending.startswith(
                        _GZIP_MAGIC[:len(self._pending)]):
                    raise ValueError("invalid data after the end of a gzip member")
                self._state = _State.HEADER
            elif self._state is _State.HEADER:
                length = header_length(self._pending[:_MAX_HEADER])
                if length is None:
                    if len(self._pending) > _MAX_HEADER:
                        raise ValueError("invalid gzip header (too long)")
                    if not self._more():
                        raise ValueError("unexpected end of gzip stream (in a header)")
                    continue
                self._pending = self._pending[length:]
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                self._member_size = 0
                self._started = True
                self._state = _State.BODY
            else:  # the trailer: CRC-32 (not needed, see above) and ISIZE
                if len(self._pending) < _TRAILER:
                    if not self._more():
                        raise ValueError("unexpected end of gzip stream (in a trailer)")
                    continue
                size = int.from_bytes(self._pending[4:_TRAILER], "little")
                if size != self._member_size & 0xFFFFFFFF:
                    raise ValueError("invalid gzip trailer (length mismatch)")
                self._pending = self._pending[_TRAILER:]
                self._state = _State.MEMBER

    def _inflate(self) -> None:
        if not self._pending and not self._more():
            raise ValueError("unexpected end of gzip stream")
        # Bounded output: a small input that inflates enormously is read in steps.
        try:
            out = self._inflater.decompress(self._pending, _MAX_OUTPUT)
        except zlib.error as error:
            raise ValueError(f"invalid gzip data: {error}") from None
        self._member_size += len(out)
        if self._inflater.eof:
            self._pending = self._inflater.unused_data
            self._state = _State.TRAILER
        else:
            self._pending = self._inflater.unconsumed_tail
        self._buffer, self._offset = out, 0

    def read(self, size: int = -1, /) -> bytes:
        self._fill()
        if self._offset >= len(self._buffer):
            return b""
        if size < 0:
            size = len(self._buffer) - self._offset
        data = self._buffer[self._offset:self._offset + size]
        self._offset += len(data)
        return data
