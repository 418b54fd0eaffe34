"""The supervisor: one asyncio event loop, one thread for log writes, every container of
one exec root.

It starts containers and exec'd processes through the OCI runtime's command line with
stdio it owns, waits for them as their subreaper (SIGCHLD, waitpid), records their exit,
and answers its clients on the control socket (protocol.py). Per process it keeps a few
small objects and file descriptors; no task and no thread per container.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

from . import protocol as p
from ._connections import MAX_REQUEST, Connections
from ._exit_records import ExitRecords, remove
from ._exits import Exits
from ._launch import Launcher
from ._records import Container, Process
from ._requests import Requests
from ._system import log
from .jsonlog import LogWriter


class Shim(Requests, Connections, Exits, Launcher, ExitRecords):
    """The state; what is done with it is in the parts it is made of (one module each)."""

    def __init__(self, exec_root: str, listener: socket.socket, idle_timeout: float) -> None:
        self.exec_root = exec_root
        self.listener = listener
        self.idle_timeout = idle_timeout
        self.loop = asyncio.get_running_loop()
        self.containers: dict[str, Container] = {}
        self.processes: dict[int, Process] = {}  # live ones, by pid
        self.commands: dict[int, asyncio.Future[int]] = {}  # runtime commands, by pid
        self.unclaimed: dict[int, tuple[int, float]] = {}  # reaped before we knew them
        self.clients: set[asyncio.StreamWriter] = set()  # control connections: get events
        self.connections = 0
        self.busy = 0  # requests and finalizations in flight
        self.writer = LogWriter(report=log)
        self.stopped: asyncio.Future[None] = self.loop.create_future()
        self._idle_handle: asyncio.TimerHandle | None = None
        self._last_activity = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.server: asyncio.AbstractServer | None = None
        self.handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "hello": self.hello, "create": self.create, "start": self.start,
            "kill": self.kill, "state": self.state, "list": self.list, "exec": self.exec,
            "resize": self.resize, "close_stdin": self.close_stdin, "delete": self.delete,
            "shutdown": self.shutdown,
        }

    # Life of the shim.

    async def serve(self) -> None:
        self.loop.add_signal_handler(signal.SIGCHLD, self.reap)
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self._terminate)
        self.loop.add_signal_handler(signal.SIGHUP, lambda: None)
        self.load_exit_records()
        self.reap()
        self.server = await asyncio.start_unix_server(self._connection, sock=self.listener,
                                                      limit=MAX_REQUEST)
        log(f"serving {self.exec_root} (idle timeout {self.idle_timeout:g}s)")
        self._schedule_idle_check()
        try:
            await self.stopped
        finally:
            self._stop()
            for writer in list(self.clients):
                writer.close()
            await asyncio.sleep(0.05)  # let the last responses go out
            self.writer.stop()
            log("stopped")

    def _unlink_socket(self) -> None:
        # Ours: the exec root's lock is held until this process ends, so no successor
        # has bound the path yet.
        remove(os.path.join(self.exec_root, p.SOCKET_NAME))

    def _live(self) -> bool:
        return bool(self.processes) or self.busy > 0

    def _terminate(self) -> None:
        if self._live():
            log(f"signal ignored: {len(self.processes)} processes are supervised")
            return
        self._stop()

    def _stop(self) -> None:
        """No new connection from now on (a client that connected too late sees the
        connection reset, and starts a new shim); no new request either."""
        if self.server is not None:
            self.server.close()
            self.server = None
            self._unlink_socket()
        if not self.stopped.done():
            self.stopped.set_result(None)

    def _activity(self) -> None:
        self._last_activity = time.monotonic()
        self._schedule_idle_check()

    def _schedule_idle_check(self, delay: float | None = None) -> None:
        if self.idle_timeout <= 0:
            return
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self._idle_handle = self.loop.call_later(
            self.idle_timeout if delay is None else delay, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_handle = None
        if self.connections or self._live():
            return  # the end of what keeps us busy schedules the next check
        remaining = self._last_activity + self.idle_timeout - time.monotonic()
        if remaining > 0:
            self._schedule_idle_check(remaining)
            return
        log("idle: no container and no client, exiting")
        self._stop()

    def _spawn_task(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
