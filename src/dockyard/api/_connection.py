"""One client connection: h11 parses and frames HTTP/1.1, dockyard/http1.py moves the bytes.

A connection serves requests one after the other (keep-alive) until the client closes
it, a response requires closing, the server shuts down or a handler hijacks it. While a
handler runs with the whole request read, the socket is still watched: EOF means the
client has gone (Ctrl-C on `docker logs -f`), and the handler is cancelled, as Go's
server cancels the request context.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import h11

from ..http1 import CONTINUE, ServerStream, has_body, reason_phrase
from ._dispatch import Dispatcher
from ._errors import InvalidParameter
from ._hijack import HijackedStream
from ._request import Body, Headers, ReceiveChunk
from ._response import HeaderList, Hijack, Response, StreamingResponse

_log = logging.getLogger("dockyard.api")

_READ_SIZE = 65536
# An unread request body up to this size is drained to keep the connection alive
# (Go's server does the same with 256 KiB); beyond it closing is cheaper.
_DRAIN_LIMIT = 256 * 1024
# Pipelined bytes buffered while a handler runs, before the watcher stops reading.
_PIPELINE_LIMIT = 1 << 20
# How long a close waits for the client's unread bytes (see ServerStream.close).
_LINGER = 0.5


class _AbortConnection(Exception):
    """The response cannot be completed; drop the connection without more bytes."""


class Connection:
    """Serves the HTTP requests arriving on one accepted socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 dispatcher: Dispatcher) -> None:
        self._stream = ServerStream(reader, writer, dispatcher.config.max_header_size,
                                    _READ_SIZE)
        self._reader = reader
        self._writer = writer
        self._h11 = self._stream.h11
        self._dispatcher = dispatcher
        self._idle = True
        self._closing = False
        self._hijacked = False
        self._task: asyncio.Task[None] | None = None
        self._watcher: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        self._task = asyncio.current_task()
        try:
            while not self._closing:
                self._idle = True
                event = await self._stream.next_event()
                self._idle = False
                if not isinstance(event, h11.Request):
                    break  # ConnectionClosed: the client is done with us
                if not await self._serve(event):
                    break
        except h11.RemoteProtocolError as error:
            await self._reject(error)
        except (ConnectionError, _AbortConnection):
            pass
        finally:
            await self._stream.close(_LINGER)

    def begin_close(self) -> None:
        """Shutdown: close now if between requests, else after the current response."""
        self._closing = True
        if self._idle and not self._h11.trailing_data[0] and self._task is not None:
            self._task.cancel()

    # -- one request -------------------------------------------------------------------

    async def _serve(self, event: h11.Request) -> bool:
        """Answer one request; True when the connection can carry another."""
        upgrade = any(name == b"upgrade" for name, _ in event.headers)
        work: asyncio.Task[bool]

        def body_complete() -> None:
            # An upgrade request is a hijack: its socket will belong to the handler.
            if not upgrade and self._watcher is None:
                self._watcher = asyncio.create_task(self._watch_client(work))

        if has_body(event):
            body = Body(self._body_reader(body_complete))
        else:
            # h11 yields the EndOfMessage of an empty body without reading the socket.
            end = self._h11.next_event()
            assert isinstance(end, h11.EndOfMessage), end
            body = Body(None)
        work = asyncio.create_task(self._respond(event, body, upgrade))
        if body.done:
            body_complete()
        try:
            return await work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the server is shutting down: not ours to swallow
            return False  # the client went away and the handler was cancelled
        finally:
            await self._stop_watching()

    def _body_reader(self, on_complete: Callable[[], None]) -> ReceiveChunk:
        async def receive_chunk() -> bytes | None:
            if self._h11.they_are_waiting_for_100_continue:
                await self._stream.send(CONTINUE)
            try:
                event = await self._stream.next_event()
            except h11.RemoteProtocolError as error:
                raise InvalidParameter(f"error reading request body: {error}") from None
            if isinstance(event, h11.Data):
                return bytes(event.data)
            assert isinstance(event, h11.EndOfMessage), event
            on_complete()
            return None
        return receive_chunk

    async def _watch_client(self, work: asyncio.Task[bool]) -> None:
        # The request is fully read: what arrives now is either a pipelined request,
        # kept for later, or EOF, meaning nobody is waiting for this response.
        while len(self._h11.trailing_data[0]) < _PIPELINE_LIMIT:
            if not await self._stream.receive():
                if not self._hijacked:
                    work.cancel()
                return

    async def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            # Cancelling a read leaves unread bytes in the StreamReader; bytes already
            # read were fed to h11. Either way nothing is lost.
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _respond(self, event: h11.Request, body: Body, upgrade: bool) -> bool:
        method = event.method.decode("ascii")
        target = event.target.decode("ascii", errors="replace")
        headers = Headers((name.decode("latin-1"), value.decode("latin-1"))
                          for name, value in event.headers)
        _, result = await self._dispatcher.dispatch(method, target, headers, body)
        if isinstance(result, Hijack):
            await self._hijack(result, body, upgrade)
            return False
        if isinstance(result, StreamingResponse):
            await self._send_stream(result, method == "HEAD", body)
        else:
            await self._send_complete(result, method == "HEAD", body)
        return await self._finish_cycle(body)

    def _response_headers(self, content_type: str | None,
                          extra: HeaderList) -> list[tuple[str, str]]:
        headers = self._dispatcher.common_headers()
        if content_type:
            headers.append(("Content-Type", content_type))
        headers.extend(extra)
        if self._closing:
            headers.append(("Connection", "close"))
        return headers

    async def _send_complete(self, response: Response, head_only: bool, body: Body) -> None:
        headers = self._response_headers(response.content_type, response.headers)
        if response.status not in (204, 304):
            headers.append(("Content-Length", str(len(response.body))))
        if (not body.done and self._h11.they_are_waiting_for_100_continue
                and not self._closing):
            # The client holds its body back until we say "continue"; we will not,
            # so the connection cannot be reused.
            headers.append(("Connection", "close"))
        # One write for head, body and end: one syscall, one packet for small replies.
        head = h11.Response(status_code=response.status, headers=headers,
                            reason=reason_phrase(response.status))
        data = self._h11.send(head)
        if response.body and not head_only and response.status not in (204, 304):
            data = (data or b"") + (self._h11.send(h11.Data(data=response.body)) or b"")
        data = (data or b"") + (self._h11.send(h11.EndOfMessage()) or b"")
        self._writer.write(data)
        await self._writer.drain()

    async def _send_stream(self, response: StreamingResponse, head_only: bool,
                           body: Body) -> None:
        chunks = response.chunks
        try:
            if not body.done and self._h11.they_are_waiting_for_100_continue:
                # The stream may consume the upload as it goes (image load, build).
                await self._stream.send(CONTINUE)
            headers = self._response_headers(response.content_type, response.headers)
            await self._stream.send(h11.Response(status_code=response.status, headers=headers,
                                          reason=reason_phrase(response.status)))
            if not head_only:
                try:
                    async for chunk in chunks:
                        if chunk:
                            await self._stream.send(h11.Data(data=chunk))
                except (ConnectionError, asyncio.CancelledError):
                    raise
                except Exception as error:
                    # Too late for an error status: cut the connection so the client
                    # sees a truncated body instead of a complete one.
                    _log.exception("streaming response failed")
                    raise _AbortConnection() from error
            await self._stream.send(h11.EndOfMessage())
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _finish_cycle(self, body: Body) -> bool:
        return await self._stream.finish_cycle(body, _DRAIN_LIMIT, (InvalidParameter,),
                                               keep_alive=not self._closing)

    async def _hijack(self, hijack: Hijack, body: Body, upgrade: bool) -> None:
        # The raw stream starts right after the request body.
        async for _ in body:
            pass
        self._hijacked = True
        # A client that did not ask for an upgrade is still being watched for EOF;
        # from now on the handler reads the socket.
        await self._stop_watching()
        if upgrade:
            lines = ["HTTP/1.1 101 UPGRADED", f"Content-Type: {hijack.content_type}",
                     "Connection: Upgrade", "Upgrade: tcp"]
        else:
            # Clients that did not ask for an upgrade get dockerd's old answer: a 200
            # with no framing, the raw stream following the blank line.
            lines = ["HTTP/1.1 200 OK", f"Content-Type: {hijack.content_type}"]
        lines += [f"{name}: {value}"
                  for name, value in (*self._dispatcher.common_headers(), *hijack.headers)]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await self._writer.drain()
        buffered, _ = self._h11.trailing_data
        stream = HijackedStream(self._reader, self._writer, buffered)
        try:
            await hijack.run(stream)
        except ConnectionError:
            pass
        except Exception:
            _log.exception("hijacked connection handler failed")

    async def _reject(self, error: h11.RemoteProtocolError) -> None:
        """Answer a request h11 could not parse, then close (Go's "400 Bad Request")."""
        await self._stream.reject(error, self._dispatcher.common_headers())
