"""Run an ApiServer in a background thread, and talk to it over a unix socket.

For tests of the API layer and of the engine's handlers: the server gets its own event
loop in a daemon thread, so plain synchronous clients (http.client, docker-py, the
docker CLI in a subprocess) can be used from the test itself.
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from pathlib import Path
from types import TracebackType

from ._config import ServerConfig
from ._router import Router
from ._server import ApiServer


class ServerThread:
    """`with ServerThread(router, path) as server:` serves `router` on unix socket `path`."""

    def __init__(self, router: Router, socket_path: Path,
                 config: ServerConfig | None = None) -> None:
        self.socket_path = Path(socket_path)
        self._router = router
        self._config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ApiServer | None = None
        self._thread = threading.Thread(target=self._run, name="api-server", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket_path}"

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        try:
            self._server = ApiServer(self._router, self._config)
            await self._server.listen_unix(self.socket_path)
        except BaseException as error:
            self._error = error
            return
        finally:
            self._started.set()
        await self._server.serve_forever()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Shut the server down gracefully and wait for the thread."""
        if self._loop is None or self._server is None or not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._server.shutdown(timeout),
                                                  self._loop)
        future.result(timeout + 5)
        self._thread.join(5)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    def connection(self, timeout: float = 10.0) -> UnixHTTPConnection:
        return UnixHTTPConnection(self.socket_path, timeout)


class UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over AF_UNIX (the Host header says "localhost", like docker's)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(str(self._path))
        self.sock = sock
