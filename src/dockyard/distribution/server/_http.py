"""A small HTTP/1.1 server for the registry: h11 frames the messages, asyncio moves bytes.

The Engine API's server (api/) is a layer above distribution and speaks Docker's API
versioning and hijacking, so the registry has this one: keep-alive connections, request
bodies streamed to the handler chunk by chunk, and blob bodies sent with sendfile(2)
straight from the page cache (h11's data passthrough lets the file bypass Python).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

import h11

_log = logging.getLogger("dockyard.registry")

_READ_SIZE = 1 << 20
# Bytes the StreamReader may buffer before it stops reading the socket: large enough that
# an upload keeps flowing while a chunk is hashed and written.
_BUFFER_LIMIT = 1 << 22
# An unread request body up to this size is read and dropped to keep the connection.
_DRAIN_LIMIT = 1 << 20
_CONTINUE = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
# A keep-alive connection idle this long between requests is closed.
_IDLE_TIMEOUT = 300.0
# Closing with unread request bytes makes the kernel send a RST, which can destroy the
# response still in flight: half-close first and drop what arrives for this long.
_LINGER = 1.0


class ClientGone(ConnectionError):
    """The client closed the connection, or broke the framing, in the middle of a body."""


class BodyTooLarge(Exception):
    """`Body.read(limit)` found more than `limit` bytes."""


@dataclass
class FileBody:
    """A response body sent from an open file with sendfile(2); the server closes it."""

    file: BinaryIO
    offset: int
    length: int


@dataclass
class StreamBody:
    """A response body of known length produced while it is sent. If the iterator fails
    the connection is cut, so the client never takes a short body for a whole one."""

    chunks: AsyncIterator[bytes]
    length: int


@dataclass
class Response:
    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: FileBody | None = None
    stream: StreamBody | None = None


class _Passthrough:
    """Stands for file bytes in h11's byte accounting; the bytes go by sendfile."""

    def __init__(self, length: int) -> None:
        self._length = length

    def __len__(self) -> int:
        return self._length


class Body:
    """The request body as an async iterator of chunks, read from the socket on demand."""

    def __init__(self, connection: _Connection, present: bool) -> None:
        self._connection = connection
        self.done = not present

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self.done:
            event = await self._connection.next_body_event()
            if isinstance(event, h11.Data):
                if event.data:
                    return event.data  # a bytearray: no copy (hashlib, write take it)
                continue
            self.done = True
        raise StopAsyncIteration

    async def read(self, limit: int) -> bytes:
        """The whole body; BodyTooLarge when it is longer than `limit`."""
        parts: list[bytes] = []
        total = 0
        async for chunk in self:
            total += len(chunk)
            if total > limit:
                raise BodyTooLarge()
            parts.append(chunk)
        return b"".join(parts)


class Request:
    def __init__(self, method: str, target: str, headers: list[tuple[bytes, bytes]],
                 body: Body, peer: str) -> None:
        self.method = method
        parts = urlsplit(target)
        self.target = target
        self.path = unquote(parts.path)
        self.query = parse_qs(parts.query, keep_blank_values=True)
        self.headers: dict[str, str] = {}
        for raw_name, raw_value in headers:
            # A repeated header is one list (RFC 9110): Go clients send an Accept per type.
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            self.headers[name] = f"{self.headers[name]}, {value}" if name in self.headers \
                else value
        self.body = body
        self.peer = peer

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


Handler = Callable[[Request], Awaitable[Response]]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 handler: Handler) -> None:
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=65536)
        self._unread_input = False
        peer = writer.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event  # type: ignore[return-value]
            try:
                data = await self._reader.read(_READ_SIZE)
            except ConnectionError:
                data = b""
            self._h11.receive_data(data)

    async def next_body_event(self) -> h11.Data | h11.EndOfMessage:
        if self._h11.they_are_waiting_for_100_continue:
            await self._send(_CONTINUE)
        try:
            event = await self._next_event()
        except h11.RemoteProtocolError as error:
            raise ClientGone(str(error)) from None
        if not isinstance(event, h11.Data | h11.EndOfMessage):
            raise ClientGone(f"unexpected {type(event).__name__} in a request body")
        return event

    async def _send(self, event: h11.Event) -> None:
        data = self._h11.send(event)
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def run(self) -> None:
        try:
            while True:
                try:
                    event = await asyncio.wait_for(self._next_event(), _IDLE_TIMEOUT)
                except TimeoutError:
                    return
                if not isinstance(event, h11.Request):
                    return
                if not await self._serve(event):
                    return
        except h11.RemoteProtocolError as error:
            self._unread_input = True
            await self._reject(error)
        except ConnectionError:
            pass
        finally:
            await self._close()

    async def _close(self) -> None:
        writer = self._writer
        with contextlib.suppress(OSError, RuntimeError):
            if self._unread_input and writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
                with contextlib.suppress(TimeoutError, ConnectionError):
                    await asyncio.wait_for(self._discard_input(), _LINGER)
            writer.close()
            await writer.wait_closed()

    async def _discard_input(self) -> None:
        while await self._reader.read(_READ_SIZE):
            pass

    async def _serve(self, event: h11.Request) -> bool:
        present = any(name in (b"transfer-encoding", b"content-length") and
                      (name == b"transfer-encoding" or value.strip() != b"0")
                      for name, value in event.headers)
        if not present:
            end = self._h11.next_event()  # an empty body ends without reading the socket
            assert isinstance(end, h11.EndOfMessage), end
        body = Body(self, present)
        method = event.method.decode("ascii")
        request = Request(method, event.target.decode("ascii", "replace"),
                          event.headers, body, self._peer)
        response = await self._handler(request)
        await self._respond(response, method == "HEAD", body)
        return await self._finish(body)

    async def _respond(self, response: Response, head_only: bool, body: Body) -> None:
        headers = [("Date", formatdate(usegmt=True)), *response.headers]
        file = response.file
        stream = response.stream
        if response.status != 204:
            length = (file.length if file is not None else
                      stream.length if stream is not None else len(response.body))
            headers.append(("Content-Length", str(length)))
        if not body.done and self._h11.they_are_waiting_for_100_continue:
            headers.append(("Connection", "close"))
        try:
            data = self._h11.send(h11.Response(status_code=response.status, headers=headers,
                                               reason=HTTPStatus(response.status).phrase))
            if head_only or response.status == 204:
                pass
            elif file is not None:
                if file.length:
                    self._writer.write(data or b"")
                    data = b""
                    self._h11.send_with_data_passthrough(
                        h11.Data(data=_Passthrough(file.length)))  # type: ignore[arg-type]
                    await self._sendfile(file)
            elif stream is not None:
                self._writer.write(data or b"")
                data = b""
                await self._send_stream(stream)
            elif response.body:
                data = (data or b"") + (self._h11.send(h11.Data(data=response.body)) or b"")
            data = (data or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
            self._writer.write(data)
            await self._writer.drain()
        finally:
            if file is not None:
                file.file.close()
            if stream is not None:
                aclose = getattr(stream.chunks, "aclose", None)
                if aclose is not None:
                    await aclose()

    async def _send_stream(self, stream: StreamBody) -> None:
        try:
            async for chunk in stream.chunks:
                self._writer.write(self._h11.send(h11.Data(data=chunk)) or b"")
                await self._writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as error:
            _log.warning("response body failed: %s", error)
            raise ConnectionError(str(error)) from error

    async def _sendfile(self, file: FileBody) -> None:
        loop = asyncio.get_running_loop()
        await self._writer.drain()
        try:
            await loop.sendfile(self._writer.transport, file.file, file.offset, file.length)
        except (OSError, RuntimeError) as error:
            raise ConnectionError(str(error)) from error

    async def _finish(self, body: Body) -> bool:
        """Make the connection ready for the next request; False when it must close."""
        if self._h11.our_state is not h11.DONE:
            return False
        if not body.done:
            self._unread_input = True
            if self._h11.they_are_waiting_for_100_continue:
                return False
            received = 0
            try:
                async for chunk in body:
                    received += len(chunk)
                    if received > _DRAIN_LIMIT:
                        return False
            except ClientGone:
                return False
            self._unread_input = False
        if self._h11.their_state is not h11.DONE:
            return False
        self._h11.start_next_cycle()
        return True

    async def _reject(self, error: h11.RemoteProtocolError) -> None:
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = error.error_status_hint
        text = f"{status} {HTTPStatus(status).phrase}: {error}\n".encode()
        with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
            await self._send(h11.Response(status_code=status, headers=[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(text))), ("Connection", "close")]))
            await self._send(h11.Data(data=text))
            await self._send(h11.EndOfMessage())


class HttpServer:
    """Serves `handler` on TCP listeners until closed."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        server = await asyncio.start_server(self._accept, host, port, limit=_BUFFER_LIMIT,
                                            reuse_address=True)
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        return bound[0], bound[1]

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await _Connection(reader, writer, self._handler).run()
        except asyncio.CancelledError:
            pass
        except Exception:
            _log.exception("connection failed")
        finally:
            self._tasks.discard(task)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
