"""stdout/stderr framing for logs, attach and exec (moby's stdcopy format).

Without a TTY, a container's stdout and stderr travel over one byte stream; each write
becomes a frame: an 8-byte header (stream type, three zero bytes, big-endian uint32
payload length) followed by the payload. With a TTY the stream is raw bytes.
"""

from __future__ import annotations

import struct
from typing import Literal

from ._versions import compare_versions

STDIN: Literal[0] = 0
STDOUT: Literal[1] = 1
STDERR: Literal[2] = 2
# stdcopy's Systemerr: an error from the daemon itself, sent in-band once the stream began.
SYSTEMERR: Literal[3] = 3

StreamType = Literal[0, 1, 2, 3]

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

_HEADER = struct.Struct(">BxxxI")
HEADER_SIZE = _HEADER.size


def frame(stream_type: StreamType, data: bytes) -> bytes:
    """One frame carrying `data` for `stream_type` (1 stdout, 2 stderr)."""
    return _HEADER.pack(stream_type, len(data)) + data


def stream_content_type(version: str, multiplexed: bool) -> str:
    """The Content-Type dockerd announces for a logs/attach/exec stream.

    Before API 1.42 the daemon said raw-stream even for framed output (the client knew
    from the container's Tty setting); since 1.42 framed output says multiplexed-stream.
    """
    if multiplexed and compare_versions(version, "1.42") >= 0:
        return MULTIPLEXED_STREAM
    return RAW_STREAM


class FrameDecoder:
    """Incremental demultiplexer: feed bytes as they arrive, get complete frames back."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Append `data`; return every frame now complete, as (stream type, payload)."""
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        while len(self._buffer) >= HEADER_SIZE:
            stream_type, length = _HEADER.unpack_from(self._buffer)
            end = HEADER_SIZE + length
            if len(self._buffer) < end:
                break
            frames.append((stream_type, bytes(self._buffer[HEADER_SIZE:end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes received that do not yet form a complete frame."""
        return len(self._buffer)


def demultiplex(data: bytes) -> tuple[bytes, bytes]:
    """Split a complete framed stream into (stdout, stderr); ValueError if truncated."""
    decoder = FrameDecoder()
    out = bytearray()
    err = bytearray()
    for stream_type, payload in decoder.feed(data):
        (err if stream_type in (STDERR, SYSTEMERR) else out).extend(payload)
    if decoder.pending:
        raise ValueError(f"truncated stream: {decoder.pending} bytes after the last frame")
    return bytes(out), bytes(err)
