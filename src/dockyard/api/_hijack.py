"""The connection handed to attach/exec handlers after the HTTP exchange ends."""

from __future__ import annotations

import asyncio


class HijackedStream:
    """Both directions of a hijacked connection, as raw bytes.

    Reading returns first the bytes the client sent right after its request (already
    received by the HTTP parser), then what arrives on the socket. The directions are
    independent: the docker CLI shuts down its write side when its stdin ends
    (`read()` then returns b"") and keeps reading the output until the server closes.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 buffered: bytes = b"") -> None:
        self.reader = reader
        self.writer = writer
        self._buffered = buffered

    async def read(self, limit: int = 65536) -> bytes:
        """Up to `limit` bytes from the client; b"" once it closed its write side."""
        if self._buffered:
            chunk, self._buffered = self._buffered[:limit], self._buffered[limit:]
            return chunk
        try:
            return await self.reader.read(limit)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        """Send `data` and wait until the socket accepted it (flow control).

        Raises ConnectionError when the client is gone, which ends a copy loop.
        """
        self.writer.write(data)
        await self.writer.drain()

    def close_write(self) -> None:
        """Signal end of output while still reading (shutdown(SHUT_WR))."""
        if self.writer.can_write_eof() and not self.writer.is_closing():
            self.writer.write_eof()

    @property
    def client_closed_write(self) -> bool:
        """True once the client's half of the connection has ended."""
        return not self._buffered and self.reader.at_eof()
