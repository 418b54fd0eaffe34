"""The control socket's connections: requests (protocol.py) dispatched to Shim's handlers
(_requests.py), events broadcast to the clients, and attach streams. A part of Shim
(_server.py), which holds the state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from . import protocol as p
from ._records import STOPPED
from ._stdio import Attacher
from ._system import log

MAX_REQUEST = 4 * 1024 * 1024  # the longest request line (an exec's process JSON)
EVENT_BACKLOG_LIMIT = 4 * 1024 * 1024  # bytes queued for a client that does not read


class Connections:
    loop: asyncio.AbstractEventLoop
    clients: set[asyncio.StreamWriter]
    connections: int
    busy: int
    stopped: asyncio.Future[None]
    handlers: dict[str, Callable[[dict[str, Any]], Any]]

    def broadcast(self, message: bytes) -> None:
        for writer in list(self.clients):
            transport = writer.transport
            if transport.is_closing():
                continue
            if transport.get_write_buffer_size() > EVENT_BACKLOG_LIMIT:
                log("a client does not read its events: disconnected")
                transport.abort()
                self.clients.discard(writer)
                continue
            writer.write(message)
    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._activity()
        try:
            first = True
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(p.encode_error(None, "request too long", p.INVALID))
                    break
                except OSError:
                    break
                if not line:
                    break
                try:
                    request_id, method, params = p.parse_request(line)
                except p.ProtocolError as e:
                    writer.write(p.encode_error(None, str(e), e.kind))
                    continue
                if method == "attach":
                    if not first:
                        writer.write(p.encode_error(request_id, "attach must be the first "
                                                    "request of a connection", p.INVALID))
                        continue
                    await self._attach(reader, writer, request_id, params)
                    return
                if first:
                    first = False
                    self.clients.add(writer)
                self._spawn_task(self._request(writer, request_id, method, params))
        finally:
            self.clients.discard(writer)
            if not writer.transport.is_closing():
                writer.close()
            self.connections -= 1
            self._activity()

    async def _request(self, writer: asyncio.StreamWriter, request_id: Any, method: str,
                       params: dict[str, Any]) -> None:
        self.busy += 1
        succeeded = False
        try:
            if self.stopped.done():
                raise p.ShimError("the shim is shutting down", p.CONFLICT)
            result = await self.handlers[method](params)
            response = p.encode_result(request_id, result or {})
            succeeded = True
        except p.ShimError as e:
            response = p.encode_error(request_id, str(e), e.kind)
        except Exception as e:  # noqa: BLE001 - the client gets the error, the shim lives
            log(f"{method}: internal error: {e!r}")
            response = p.encode_error(request_id, f"{type(e).__name__}: {e}", p.INTERNAL)
        finally:
            self.busy -= 1
        if not writer.transport.is_closing():
            writer.write(response)
        if method == "shutdown" and succeeded:
            log("shutdown requested")
            self.loop.call_soon(self._stop)

    async def _attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      request_id: Any, params: dict[str, Any]) -> None:
        try:
            process = self._process(params)
            if process.status == STOPPED:
                raise p.ShimError("the process has exited", p.CONFLICT)
        except p.ShimError as e:
            writer.write(p.encode_error(request_id, str(e), e.kind))
            return
        stdio = process.stdio
        writer.write(p.encode_result(request_id, {"terminal": stdio.terminal}))
        attacher = Attacher(writer, bool(params.get("stdout", True)),
                            bool(params.get("stderr", True)))
        stdio.attachers.append(attacher)
        wants_stdin = bool(params.get("stdin", False))
        try:
            while True:
                try:
                    data = await reader.read(65536)
                except OSError:
                    break
                if not data:
                    if wants_stdin and params.get("stdin_once"):
                        stdio.close_stdin()
                    break
                if wants_stdin:
                    await stdio.write_stdin(data)
            # Input is over; output goes on until the process ends or the client leaves.
            await writer.wait_closed()
        except OSError:
            pass
        finally:
            if attacher in stdio.attachers:
                stdio.attachers.remove(attacher)
