"""A small HTTP/1.1 server for the registry: h11 frames the messages, asyncio moves bytes.

The connection's basics are dockyard/http1.py's, shared with the Engine API's server
(api/, a layer above distribution, with Docker's API versioning and hijacking). The
registry's own: keep-alive connections with an idle timeout, request bodies streamed to
the handler chunk by chunk, and blob bodies sent with sendfile(2) straight from the page
cache (h11's data passthrough lets the file bypass Python).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

import h11

from ...http1 import CONTINUE, ServerStream, has_body, reason_phrase

_log = logging.getLogger("dockyard.registry")

_READ_SIZE = 1 << 20
_MAX_HEADER_SIZE = 65536
# Bytes the StreamReader may buffer before it stops reading the socket: large enough that
# an upload keeps flowing while a chunk is hashed and written.
_BUFFER_LIMIT = 1 << 22
# An unread request body up to this size is read and dropped to keep the connection.
_DRAIN_LIMIT = 1 << 20
# A keep-alive connection idle this long between requests is closed.
_IDLE_TIMEOUT = 300.0
# How long a close waits for the client's unread bytes (see ServerStream.close).
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
        self._stream = ServerStream(reader, writer, _MAX_HEADER_SIZE, _READ_SIZE)
        self._writer = writer
        self._h11 = self._stream.h11
        self._handler = handler
        peer = writer.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    async def next_body_event(self) -> h11.Data | h11.EndOfMessage:
        if self._h11.they_are_waiting_for_100_continue:
            await self._stream.send(CONTINUE)
        try:
            event = await self._stream.next_event()
        except h11.RemoteProtocolError as error:
            raise ClientGone(str(error)) from None
        if not isinstance(event, h11.Data | h11.EndOfMessage):
            raise ClientGone(f"unexpected {type(event).__name__} in a request body")
        return event

    async def run(self) -> None:
        try:
            while True:
                try:
                    event = await asyncio.wait_for(self._stream.next_event(), _IDLE_TIMEOUT)
                except TimeoutError:
                    return
                if not isinstance(event, h11.Request):
                    return
                if not await self._serve(event):
                    return
        except h11.RemoteProtocolError as error:
            await self._stream.reject(error, [])
        except ConnectionError:
            pass
        finally:
            await self._stream.close(_LINGER)

    async def _serve(self, event: h11.Request) -> bool:
        present = has_body(event)
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
                                               reason=reason_phrase(response.status)))
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
        return await self._stream.finish_cycle(body, _DRAIN_LIMIT, (ClientGone,))


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
