"""Running the OCI runtime's commands: as a call in a worker thread, forked from the shim
(Dockyard's own runtime, see _inprocess.py) or spawned; and the launch of a container's
init or an exec with stdio (pipes, or the pty the runtime sends on a console socket) that
the shim owns. A part of Shim (_server.py), which holds the state."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Callable
from typing import Any

from . import _inprocess
from . import protocol as p
from ._exit_records import TMP_PREFIX, remove
from ._records import Process
from ._runtime import RESET_SIGNALS, Runtime, error_message
from ._stdio import NO_STDIN, set_nonblocking, set_window_size
from ._system import anonymous_file, read_all


class Launcher:
    loop: asyncio.AbstractEventLoop
    exec_root: str
    commands: dict[int, asyncio.Future[int]]

    def spawn(self, argv: list[str], stdin: int, stdout: int, stderr: int) -> asyncio.Future[int]:
        """Starts a runtime command in a session of its own (so that the container is not
        in ours); the future gets its wait status."""
        try:
            if _inprocess.is_own_runtime(argv[0]):
                pid = _inprocess.spawn(argv, stdin, stdout, stderr, RESET_SIGNALS)
            else:
                pid = os.posix_spawn(argv[0], argv, os.environ,
                                     file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0),
                                                   (os.POSIX_SPAWN_DUP2, stdout, 1),
                                                   (os.POSIX_SPAWN_DUP2, stderr, 2)],
                                     setsigdef=RESET_SIGNALS, setsid=True)
        except OSError as e:
            raise p.ShimError(f"cannot run the runtime {argv[0]}: {e.strerror}",
                              p.RUNTIME) from None
        future: asyncio.Future[int] = self.loop.create_future()
        self.commands[pid] = future
        return future

    async def _launch(self, process: Process, console_size: dict[str, Any] | None,
                      make_argv: Callable[[str, str | None, str], list[str]]) -> None:
        """Runs `create` or `exec --detach` with stdio we own, and sets the pid of the
        process it started."""
        stdio = process.stdio
        terminal = stdio.terminal
        tmp = os.path.join(self.exec_root, f"{TMP_PREFIX}{os.urandom(5).hex()}")
        pid_file, runtime_log, console_path = f"{tmp}.pid", f"{tmp}.log", f"{tmp}.sock"
        theirs: list[int] = []  # the runtime's ends: closed once it is started
        ours: list[int] = []  # closed if the launch fails
        listener: socket.socket | None = None
        receive: asyncio.Task[int] | None = None
        stdin_w = errors_fd = -1
        launched = False
        try:
            devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            theirs.append(devnull)
            if terminal:
                listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                listener.bind(console_path)
                listener.listen(1)
                listener.setblocking(False)
                receive = self.loop.create_task(self._receive_master(listener))
                errors_fd = anonymous_file(self.exec_root)
                ours.append(errors_fd)
                stdin_fd, stdout_fd, stderr_fd = devnull, devnull, errors_fd
            else:
                stdin_fd = devnull
                if stdio.stdin_fd != NO_STDIN:
                    stdin_fd, stdin_w = os.pipe()
                    theirs.append(stdin_fd)
                    ours.append(stdin_w)
                out_r, stdout_fd = os.pipe()
                errors_fd, stderr_fd = os.pipe()
                ours += [out_r, errors_fd]
                theirs += [stdout_fd, stderr_fd]
            argv = make_argv(pid_file, console_path if terminal else None, runtime_log)
            try:
                waiting = self.spawn(argv, stdin_fd, stdout_fd, stderr_fd)
            finally:
                for fd in theirs:
                    os.close(fd)
                theirs.clear()
            status = await waiting
            if status != 0:
                raise p.ShimError(self._runtime_error(runtime_log, errors_fd, status),
                                  p.RUNTIME)
            launched = True
            with open(pid_file) as f:
                pid = int(f.read().strip())
            if terminal:
                assert receive is not None
                try:
                    master = await asyncio.wait_for(receive, 5)
                except TimeoutError:
                    raise p.ShimError("the runtime sent no terminal on the console socket",
                                      p.RUNTIME) from None
                set_nonblocking(master)
                if console_size:
                    set_window_size(master, int(console_size.get("height", 0)),
                                    int(console_size.get("width", 0)))
                ours.clear()
                os.close(errors_fd)  # the runtime's errors: none
                stdio.set_terminal(master)
            else:
                ours.clear()
                if stdin_w >= 0:
                    stdio.add_stdin_pipe(stdin_w)
                stdio.add_output(out_r, p.STDOUT)
                stdio.add_output(errors_fd, p.STDERR)
            process.pid = pid
        except BaseException:
            for fd in theirs + ours:
                os.close(fd)
            if receive is not None:
                receive.cancel()
                try:
                    os.close(await receive)
                except (asyncio.CancelledError, OSError, p.ShimError):
                    pass
            if launched and process.exec_id is None:
                # The runtime made a container we cannot supervise: undo it.
                container = process.container
                await self._run_runtime(container.runtime, "delete", "--force", container.id)
            raise
        finally:
            if listener is not None:
                listener.close()
            for path in (pid_file, runtime_log, console_path):
                remove(path)

    def _runtime_error(self, runtime_log: str, errors_fd: int, status: int) -> str:
        try:
            with open(runtime_log, "rb") as f:
                log_text = f.read()
        except OSError:
            log_text = b""
        if stat.S_ISFIFO(os.fstat(errors_fd).st_mode):
            set_nonblocking(errors_fd)  # the container's stderr: another may hold it open
            try:
                stderr_text = os.read(errors_fd, 65536)
            except OSError:
                stderr_text = b""
        else:
            stderr_text = read_all(errors_fd)
        return error_message(log_text, stderr_text, status)

    async def _receive_master(self, listener: socket.socket) -> int:
        """The pty master the container's init sends on the console socket."""
        connection, _ = await self.loop.sock_accept(listener)
        try:
            connection.setblocking(False)
            received: asyncio.Future[int] = self.loop.create_future()

            def readable() -> None:
                try:
                    _, fds, _, _ = socket.recv_fds(connection, 4096, 1)
                except BlockingIOError:
                    return
                except OSError as e:
                    received.set_exception(e)
                    return
                if fds:
                    received.set_result(fds[0])
                else:
                    received.set_exception(p.ShimError("console socket closed without a "
                                                       "terminal", p.RUNTIME))

            self.loop.add_reader(connection.fileno(), readable)
            try:
                return await received
            finally:
                self.loop.remove_reader(connection.fileno())
        finally:
            connection.close()

    async def _run_runtime(self, runtime: Runtime, command: str, *args: str) -> str | None:
        """Runs a runtime command; its error message, or None if it succeeded."""
        argv = runtime.argv(command, *args)
        if _inprocess.is_own_runtime(argv[0]) and command in _inprocess.CALLABLE:
            try:
                return await asyncio.to_thread(_inprocess.call, argv)
            except _inprocess.NeedsProcess:
                pass
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        errors = anonymous_file(self.exec_root)
        try:
            try:
                waiting = self.spawn(argv, devnull, devnull, errors)
            finally:
                os.close(devnull)
            status = await waiting
            if status == 0:
                return None
            return error_message(b"", read_all(errors), status)
        finally:
            os.close(errors)
