"""The API server: listeners, connections, graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from urllib.parse import urlsplit

from ._config import ServerConfig
from ._connection import Connection
from ._dispatch import Dispatcher
from ._listeners import ListenError, bind_unix, remove_unix_socket, socket_identity
from ._router import Router

_log = logging.getLogger("dockyard.api")


class ApiServer:
    """Serves a Router over HTTP/1.1 on any number of unix and TCP listeners."""

    def __init__(self, router: Router, config: ServerConfig | None = None) -> None:
        self.config = config or ServerConfig()
        self._dispatcher = Dispatcher(router, self.config)
        self._servers: list[asyncio.Server] = []
        self._unix_sockets: list[tuple[Path, tuple[int, int]]] = []
        self._connections: dict[Connection, asyncio.Task[None]] = {}
        self._addresses: list[str] = []
        self._closed = asyncio.Event()
        self._shutting_down = False

    @property
    def addresses(self) -> list[str]:
        """Where the server listens, as "unix:///path" and "tcp://host:port"."""
        return list(self._addresses)

    async def listen(self, address: str) -> str:
        """Listen on a daemon `-H` style address; returns the address actually bound."""
        parts = urlsplit(address)
        if parts.scheme == "unix":
            path = parts.path or "/run/dockyard.sock"
            await self.listen_unix(Path(path))
            return f"unix://{path}"
        if parts.scheme == "tcp":
            host, port = await self.listen_tcp(parts.hostname or "127.0.0.1",
                                               parts.port or 2375)
            return f"tcp://{host}:{port}"
        raise ListenError(f"unsupported listen address {address!r} (unix:// or tcp://)")

    async def listen_unix(self, path: Path, mode: int = 0o660,
                          group: str | int | None = None) -> None:
        """Listen on a unix socket file (see `bind_unix` for the safety rules)."""
        sock = bind_unix(path, mode, group)
        identity = socket_identity(path)
        try:
            server = await asyncio.start_unix_server(self._accept, sock=sock)
        except BaseException:
            sock.close()
            remove_unix_socket(path, identity)
            raise
        self._servers.append(server)
        self._unix_sockets.append((path, identity))
        self._addresses.append(f"unix://{path}")

    async def listen_tcp(self, host: str, port: int) -> tuple[str, int]:
        """Listen on TCP (plain HTTP, as dockerd's -H tcp:// without TLS); port 0 picks
        a free port. Returns the bound (host, port)."""
        server = await asyncio.start_server(self._accept, host, port)
        self._servers.append(server)
        bound = server.sockets[0].getsockname()
        self._addresses.append(f"tcp://{bound[0]}:{bound[1]}")
        return bound[0], bound[1]

    async def _accept(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if self._shutting_down:
            writer.close()
            return
        connection = Connection(reader, writer, self._dispatcher)
        task = asyncio.current_task()
        assert task is not None
        self._connections[connection] = task
        try:
            await connection.run()
        except asyncio.CancelledError:
            pass  # shutdown closed it; the stream machinery would log a cancelled task
        except Exception:
            _log.exception("connection failed")
        finally:
            del self._connections[connection]

    async def serve_forever(self) -> None:
        """Wait until `shutdown` has completed."""
        await self._closed.wait()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting, let running requests finish (up to `timeout`), then close.

        Idle keep-alive connections close at once; a connection busy with a request
        closes after its response (which says `Connection: close`). Whatever still runs
        after the timeout, such as followed logs or a hijacked attach, is cancelled.
        """
        if self._shutting_down:
            await self._closed.wait()
            return
        self._shutting_down = True
        for server in self._servers:
            server.close()
        for path, identity in self._unix_sockets:
            remove_unix_socket(path, identity)
        for connection in list(self._connections):
            connection.begin_close()
        tasks = list(self._connections.values())
        if tasks:
            limit = self.config.shutdown_timeout if timeout is None else timeout
            _, pending = await asyncio.wait(tasks, timeout=limit)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._closed.set()
