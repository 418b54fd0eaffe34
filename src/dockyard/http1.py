"""What dockyard's two HTTP/1.1 servers share of a connection: the Engine API's
(api/_connection.py) and the registry's (distribution/server/_http.py).

h11 parses and frames the messages; this moves the bytes over asyncio streams. Each server
keeps what is its own (the API's hijacking and watching for a client that went away, the
registry's sendfile bodies); here are reading events, sending them, readying the connection
for the next request, answering a request h11 cannot parse, and closing without losing the
last response to a reset.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Protocol

import h11

CONTINUE = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")


def reason_phrase(status: int) -> bytes:
    """h11 leaves the reason phrase empty; Go (dockerd, the registry) writes the standard
    one."""
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def has_body(event: h11.Request) -> bool:
    for name, value in event.headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip() != b"0":
            return True
    return False


class RequestBody(Protocol):
    """A request body as the servers hand it to handlers: chunks read on demand."""

    @property
    def done(self) -> bool: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class ServerStream:
    """One accepted connection's bytes and its h11 state machine."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_header_size: int, read_size: int) -> None:
        self.reader = reader
        self.writer = writer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_size)
        self.read_size = read_size
        self.eof = False
        # Set when we close while the client may still be sending (an unread body).
        self.unread_input = False

    async def receive(self) -> bytes:
        """One read from the socket, fed to h11 (a reset counts as end-of-file)."""
        try:
            data = await self.reader.read(self.read_size)
        except ConnectionError:
            data = b""
        self.eof = self.eof or not data
        self.h11.receive_data(data)
        return data

    async def next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]  # the sentinel is excluded
            await self.receive()

    async def send(self, event: h11.Event) -> None:
        data = self.h11.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def finish_cycle(self, body: RequestBody, drain_limit: int,
                           body_errors: tuple[type[BaseException], ...],
                           keep_alive: bool = True) -> bool:
        """After a response: reads what the handler left of the request body (up to
        `drain_limit` bytes; beyond it closing is cheaper) and readies the connection for
        the next request. False when the connection must close instead."""
        if self.h11.our_state is not h11.DONE:
            return False
        if not body.done:
            self.unread_input = True
            if self.h11.they_are_waiting_for_100_continue:
                return False
            received = 0
            try:
                async for chunk in body:
                    received += len(chunk)
                    if received > drain_limit:
                        return False
            except body_errors:
                return False  # a malformed body: the stream is out of sync
            self.unread_input = False
        if not keep_alive or self.h11.their_state is not h11.DONE:
            return False
        self.h11.start_next_cycle()
        return True

    async def reject(self, error: h11.RemoteProtocolError,
                     headers: list[tuple[str, str]]) -> None:
        """Answers a request h11 could not parse, as Go's servers do ("400 Bad Request:
        ..."), before the connection closes."""
        self.unread_input = True
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = error.error_status_hint
        body = f"{status} {HTTPStatus(status).phrase}: {error}".encode()
        headers = [*headers, ("Content-Type", "text/plain; charset=utf-8"),
                   ("Content-Length", str(len(body))), ("Connection", "close")]
        with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
            await self.send(h11.Response(status_code=status, headers=headers,
                                         reason=reason_phrase(status)))
            await self.send(h11.Data(data=body))
            await self.send(h11.EndOfMessage())

    async def close(self, linger: float) -> None:
        """Closes the connection. With request bytes possibly still coming, closing at once
        would make the kernel send a reset that can destroy the response in flight: so
        half-close first, and drop what arrives for up to `linger` seconds."""
        writer = self.writer
        if writer.is_closing():
            return
        with contextlib.suppress(OSError, RuntimeError):
            if self.unread_input and not self.eof and writer.can_write_eof():
                writer.write_eof()
                with contextlib.suppress(TimeoutError, ConnectionError):
                    await asyncio.wait_for(self._discard_until_eof(), linger)
            writer.close()
            await writer.wait_closed()

    async def _discard_until_eof(self) -> None:
        while await self.reader.read(self.read_size):
            pass
