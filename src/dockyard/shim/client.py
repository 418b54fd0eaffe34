"""The daemon's side of the shim: find (or start) the shim of an exec root, send requests,
receive events, attach to a process's stdio.

    client = ShimClient.connect_or_start(exec_root, ["dockyard-shim"])
    client.create("c1", bundle, runtime="/usr/bin/runc", runtime_root=root, log_path=log)
    client.start("c1")
    for event in client.events(timeout=10): ...

AsyncShimClient is the same for asyncio code; its connect_or_start runs the (blocking,
rare) start in a thread.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from . import protocol as p
from .protocol import ShimError

MAX_LINE = 4 * 1024 * 1024
EVENT_QUEUE = 10000  # events kept for a client that reads them later; the oldest go first


class ShimStartError(RuntimeError):
    """The shim could not be started (its own message)."""


def socket_path(exec_root: str) -> str:
    return os.path.join(exec_root, p.SOCKET_NAME)


def _params(**params: Any) -> dict[str, Any]:
    return {name: value for name, value in params.items() if value is not None}


class _Methods:
    """The protocol's methods; `request` is blocking in ShimClient, a coroutine in
    AsyncShimClient (so each of these returns an awaitable there)."""

    def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        raise NotImplementedError

    def hello(self) -> Any:
        return self.request("hello")

    def create(self, container_id: str, bundle: str, runtime: str, runtime_root: str, *,
               log_path: str | None = None, log_max_size: int | None = None,
               log_max_files: int | None = None, terminal: bool = False,
               stdin_open: bool = False, console_size: dict[str, int] | None = None,
               runtime_args: Sequence[str] | None = None, delete_on_exit: bool = False) -> Any:
        """delete_on_exit: the caller will delete the container once its init has exited,
        whatever happens next (a restart is a new create): the shim starts the runtime's
        delete as soon as the init's output has ended, and `delete` then waits for it."""
        return self.request("create", _params(
            id=container_id, bundle=bundle, runtime=runtime, runtime_root=runtime_root,
            log_path=log_path, log_max_size=log_max_size, log_max_files=log_max_files,
            terminal=terminal, stdin_open=stdin_open, console_size=console_size,
            runtime_args=list(runtime_args) if runtime_args else None,
            delete_on_exit=delete_on_exit or None))

    def start(self, container_id: str, exec_id: str | None = None) -> Any:
        return self.request("start", _params(id=container_id, exec_id=exec_id))

    def kill(self, container_id: str, signal: int = 15, all: bool = False,
             exec_id: str | None = None) -> Any:
        return self.request("kill", _params(id=container_id, signal=signal, all=all,
                                            exec_id=exec_id))

    def state(self, container_id: str, exec_id: str | None = None) -> Any:
        return self.request("state", _params(id=container_id, exec_id=exec_id))

    def list(self) -> Any:
        return self.request("list")

    def exec(self, container_id: str, exec_id: str, process: dict[str, Any],
             terminal: bool = False, stdin_open: bool = False,
             console_size: dict[str, int] | None = None, start: bool = True) -> Any:
        """Starts `process` (an OCI process object) in the container; with start=False
        only prepares it, for attaching before `start(container_id, exec_id)`."""
        return self.request("exec", _params(id=container_id, exec_id=exec_id,
                                            process=process, terminal=terminal,
                                            stdin_open=stdin_open,
                                            console_size=console_size,
                                            start=None if start else False))

    def resize(self, container_id: str, height: int, width: int,
               exec_id: str | None = None) -> Any:
        return self.request("resize", _params(id=container_id, height=height, width=width,
                                              exec_id=exec_id))

    def close_stdin(self, container_id: str, exec_id: str | None = None) -> Any:
        return self.request("close_stdin", _params(id=container_id, exec_id=exec_id))

    def delete(self, container_id: str, force: bool = False,
               exec_id: str | None = None) -> Any:
        return self.request("delete", _params(id=container_id, force=force, exec_id=exec_id))

    def shutdown(self) -> Any:
        return self.request("shutdown")


def _attach_params(container_id: str, exec_id: str | None, stdin: bool, stdout: bool,
                   stderr: bool, stdin_once: bool) -> dict[str, Any]:
    return _params(id=container_id, exec_id=exec_id, stdin=stdin, stdout=stdout,
                   stderr=stderr, stdin_once=stdin_once)


class ShimClient(_Methods):
    """A blocking connection to the shim. Not thread-safe: one per thread."""

    def __init__(self, sock: socket.socket, exec_root: str) -> None:
        self.sock = sock
        self.exec_root = exec_root
        self._buffer = bytearray()
        self._next_id = 0
        self._events: deque[dict[str, Any]] = deque(maxlen=EVENT_QUEUE)
        self.timeout = 60.0

    @classmethod
    def connect(cls, exec_root: str, timeout: float = 10.0) -> ShimClient:
        exec_root = os.path.abspath(exec_root)
        sock = _connect(socket_path(exec_root), timeout)
        client = cls(sock, exec_root)
        try:
            client.request("hello", timeout=timeout)
        except BaseException:
            client.close()
            raise
        return client

    @classmethod
    def connect_or_start(cls, exec_root: str, shim_argv: Sequence[str],
                         timeout: float = 10.0) -> ShimClient:
        """Connects to the exec root's shim, starting it (`shim_argv` + --exec-root) if
        nobody answers. A lock file keeps two daemons from starting two; a shim that
        idles out as we connect is simply started again."""
        exec_root = os.path.abspath(exec_root)
        client = _try_connect(exec_root, timeout)
        if client is not None:
            return client
        os.makedirs(exec_root, mode=0o711, exist_ok=True)
        lock_fd = os.open(os.path.join(exec_root, p.START_LOCK_NAME),
                          os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _lock(lock_fd, timeout)
            for _ in range(3):
                client = _try_connect(exec_root, timeout)
                if client is not None:
                    return client
                _start_shim(exec_root, shim_argv, timeout)
                client = _try_connect(exec_root, timeout)
                if client is not None:
                    return client
            raise ShimStartError(f"the shim of {exec_root} started but does not answer")
        finally:
            os.close(lock_fd)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> ShimClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, params: dict[str, Any] | None = None,
                timeout: float | None = None) -> dict[str, Any]:
        self._next_id += 1
        request_id = self._next_id
        self.sock.settimeout(timeout or self.timeout)
        self.sock.sendall(p.encode_request(request_id, method, params))
        while True:
            doc = self._read_message(timeout or self.timeout)
            if "event" in doc:
                self._events.append(doc)
            elif doc.get("id") == request_id or doc.get("id") is None:
                return p.response_result(doc)

    def _read_message(self, timeout: float | None) -> dict[str, Any]:
        self.sock.settimeout(timeout)
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline + 1])
                del self._buffer[:newline + 1]
                return p.decode_message(line)
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the shim closed the connection")
            self._buffer += data

    def next_event(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next event, or None after `timeout` seconds without one."""
        if self._events:
            return self._events.popleft()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                doc = self._read_message(remaining)
            except TimeoutError:
                return None
            if "event" in doc:
                return doc

    def events(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Events as they come; ends after `timeout` seconds without one."""
        while True:
            event = self.next_event(timeout)
            if event is None:
                return
            yield event

    def attach(self, container_id: str, exec_id: str | None = None, *, stdin: bool = False,
               stdout: bool = True, stderr: bool = True, stdin_once: bool = False,
               timeout: float = 10.0) -> socket.socket:
        """A new connection carrying the process's stdio: read output from it (framed
        unless the process has a terminal: protocol.FrameDecoder), write input to it,
        shut its write side down for the end of input."""
        sock = _connect(socket_path(self.exec_root), timeout)
        try:
            sock.sendall(p.encode_request(1, "attach", _attach_params(
                container_id, exec_id, stdin, stdout, stderr, stdin_once)))
            line = _read_line_exactly(sock)
            p.response_result(p.decode_message(line))
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return sock


def _connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def _read_line_exactly(sock: socket.socket) -> bytes:
    """One line, without reading past it (what follows is the raw stream)."""
    line = b""
    while True:
        peeked = sock.recv(65536, socket.MSG_PEEK)
        if not peeked:
            raise ConnectionError("the shim closed the connection")
        newline = peeked.find(b"\n")
        take = len(peeked) if newline < 0 else newline + 1
        line += sock.recv(take)
        if newline >= 0:
            return line


def _try_connect(exec_root: str, timeout: float) -> ShimClient | None:
    try:
        return ShimClient.connect(exec_root, timeout)
    except (OSError, ValueError, ShimError):
        return None


def _lock(fd: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise ShimStartError("timed out waiting for another start of the "
                                     "shim") from None
            time.sleep(0.02)


def _start_shim(exec_root: str, shim_argv: Sequence[str], timeout: float) -> None:
    import subprocess

    # The command returns once the detached shim listens (or failed).
    try:
        completed = subprocess.run([*shim_argv, "--exec-root", exec_root],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ShimStartError(f"starting the shim: {e}") from None
    if completed.returncode != 0:
        message = completed.stderr.decode(errors="replace").strip()
        raise ShimStartError(message or f"the shim exited with {completed.returncode}")


class AsyncShimClient(_Methods):
    """An asyncio connection to the shim: requests may run concurrently; events are
    queued for `events()`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 exec_root: str) -> None:
        self.reader = reader
        self.writer = writer
        self.exec_root = exec_root
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(EVENT_QUEUE)
        self._read_task = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def connect(cls, exec_root: str) -> AsyncShimClient:
        exec_root = os.path.abspath(exec_root)
        reader, writer = await asyncio.open_unix_connection(socket_path(exec_root),
                                                            limit=MAX_LINE)
        client = cls(reader, writer, exec_root)
        try:
            await client.request("hello")
        except BaseException:
            await client.close()
            raise
        return client

    @classmethod
    async def connect_or_start(cls, exec_root: str, shim_argv: Sequence[str],
                               timeout: float = 10.0) -> AsyncShimClient:
        for _ in range(3):
            try:
                return await cls.connect(exec_root)
            except (OSError, ShimError):
                pass
            sync = await asyncio.to_thread(ShimClient.connect_or_start, exec_root,
                                           shim_argv, timeout)
            sync.close()
        return await cls.connect(exec_root)

    async def _read_loop(self) -> None:
        error: BaseException = ConnectionError("the shim closed the connection")
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                doc = p.decode_message(line)
                if "event" in doc:
                    if self._events.full():
                        self._events.get_nowait()
                    self._events.put_nowait(doc)
                    continue
                future = self._pending.pop(doc.get("id"), None)  # type: ignore[arg-type]
                if future is not None and not future.done():
                    future.set_result(doc)
        except (OSError, ValueError) as e:
            error = e
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(error)
            self._pending.clear()
            if self._events.full():
                self._events.get_nowait()
            self._events.put_nowait(None)

    async def request(self, method: str,  # type: ignore[override]
                      params: dict[str, Any] | None = None) -> dict[str, Any]:
        if self._read_task.done():
            raise ConnectionError("the shim closed the connection")
        self._next_id += 1
        request_id = self._next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.writer.write(p.encode_request(request_id, method, params))
        await self.writer.drain()
        return p.response_result(await future)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Events until the connection ends."""
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def attach(self, container_id: str, exec_id: str | None = None, *,
                     stdin: bool = False, stdout: bool = True, stderr: bool = True,
                     stdin_once: bool = False
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_unix_connection(socket_path(self.exec_root))
        try:
            writer.write(p.encode_request(1, "attach", _attach_params(
                container_id, exec_id, stdin, stdout, stderr, stdin_once)))
            line = await reader.readline()
            if not line:
                raise ConnectionError("the shim closed the connection")
            p.response_result(p.decode_message(line))
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass
        self._read_task.cancel()
