"""The supervisor: one asyncio event loop, one thread for log writes, every container of
one exec root.

It starts containers and exec'd processes through the OCI runtime's command line with
stdio it owns, waits for them as their subreaper (SIGCHLD, waitpid), records their exit,
and answers its clients on the control socket (protocol.py). Per process it keeps a few
small objects and file descriptors; no task and no thread per container.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import time
from collections.abc import Callable
from typing import Any

from . import _inprocess
from . import protocol as p
from ._runtime import RESET_SIGNALS, Runtime, error_message, is_not_found
from ._stdio import NO_STDIN, Attacher, Stdio, set_nonblocking, set_window_size
from ._system import (
    anonymous_file,
    log,
    memory_oom_file,
    oom_kill_count,
    proc_stat,
    read_all,
    write_json_atomic,
)
from .jsonlog import LogWriter, now_rfc3339nano

MAX_REQUEST = 4 * 1024 * 1024  # the longest request line (an exec's process JSON)
EVENT_BACKLOG_LIMIT = 4 * 1024 * 1024  # bytes queued for a client that does not read
OUTPUT_END_TIMEOUT = 2.0  # after an exit, how long output may keep coming (background
#                           processes that hold the pipe)
UNCLAIMED_TTL = 60.0
LOG_CLOSE_TIMEOUT = 10.0  # a disk so slow that the exit is recorded without its log
UNCLAIMED_LIMIT = 256
TMP_PREFIX = ".tmp-"

_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")

CREATING, CREATED, RUNNING, STOPPED = "creating", "created", "running", "stopped"


def check_id(value: str, what: str) -> None:
    if not value or len(value) > 128 or not _ID_CHARACTERS.issuperset(value) or \
            value in (".", ".."):
        raise p.ShimError(f"invalid {what}: {value!r}", p.INVALID)


class Process:
    """A container's init or an exec'd process. An exec may be prepared (pid 0, status
    "created") so that clients attach before it starts, as Docker's exec create/start."""

    __slots__ = ("container", "exec_id", "pid", "start_time", "stdio", "status", "exit_code",
                 "finished_at", "busy", "idle_waiter", "finalized", "pidfd", "prepared")

    def __init__(self, container: Container, exec_id: str | None, stdio: Stdio) -> None:
        self.container = container
        self.exec_id = exec_id
        self.pid = 0
        self.start_time = 0
        self.stdio = stdio
        self.status = CREATED
        self.exit_code: int | None = None
        self.finished_at = ""
        self.busy = 0  # requests about this process in flight: its exit event waits
        self.idle_waiter: asyncio.Future[None] | None = None
        self.finalized: asyncio.Future[None] = stdio.loop.create_future()
        self.pidfd = -1
        # An exec not started yet: (OCI process, console size).
        self.prepared: tuple[dict[str, Any], dict[str, Any] | None] | None = None

    def release(self) -> None:
        self.busy -= 1
        if self.busy == 0 and self.idle_waiter is not None and not self.idle_waiter.done():
            self.idle_waiter.set_result(None)

    def alive(self) -> bool:
        """Running, and the pid still the same process (not reused after an exit)."""
        if self.status not in (CREATED, RUNNING) or not self.pid:
            return False
        info = proc_stat(self.pid)
        return info is not None and info[2] == self.start_time and info[0] not in "ZX"

    def describe(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"pid": self.pid, "status": self.status,
                               "terminal": self.stdio.terminal}
        if self.exec_id is not None:
            doc["exec_id"] = self.exec_id
        if self.exit_code is not None:
            doc.update(exit_code=self.exit_code, finished_at=self.finished_at)
        return doc


class Container:
    __slots__ = ("id", "runtime", "bundle", "log_path", "stdin_open", "init", "execs",
                 "oom_file", "oom_base", "exit_record", "deleting", "delete_on_exit",
                 "early_delete")

    def __init__(self, container_id: str, runtime: Runtime, bundle: str,
                 log_path: str | None, stdin_open: bool) -> None:
        self.id = container_id
        self.runtime = runtime
        self.bundle = bundle
        self.log_path = log_path
        self.stdin_open = stdin_open
        self.init: Process | None = None
        self.execs: dict[str, Process] = {}
        self.oom_file: str | None = None
        self.oom_base = 0
        self.exit_record: dict[str, Any] | None = None  # once the init has exited
        self.deleting = False
        # The client deletes every container once its init has exited: the runtime's
        # delete is started then, and `delete` takes its outcome (its error, or None).
        self.delete_on_exit = False
        self.early_delete: asyncio.Task[str | None] | None = None

    @property
    def status(self) -> str:
        if self.init is not None:
            return self.init.status
        return STOPPED if self.exit_record is not None else CREATING

    def describe(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "status": self.status, "bundle": self.bundle,
                               "log_path": self.log_path, "stdin_open": self.stdin_open,
                               **self.runtime.to_dict()}
        if self.init is not None:
            doc.update(self.init.describe())
            log_file = self.init.stdio.log
            if log_file is not None:
                doc.update(log_dropped_entries=log_file.dropped_entries,
                           log_dropped_bytes=log_file.dropped_bytes)
        if self.exit_record is not None:
            for name in ("pid", "exit_code", "finished_at", "oom_killed"):
                doc[name] = self.exit_record.get(name)
        doc["execs"] = [process.describe() for process in self.execs.values()]
        return doc


class Shim:
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
        _remove(os.path.join(self.exec_root, p.SOCKET_NAME))

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

    def load_exit_records(self) -> None:
        """Exit records written by an earlier shim of this exec root: still in `list`
        until `delete`."""
        for name in sorted(os.listdir(self.exec_root)):
            path = os.path.join(self.exec_root, name)
            if name.startswith(TMP_PREFIX) or name.endswith(f"{p.EXIT_SUFFIX}.tmp"):
                _remove(path)
                continue
            if not name.endswith(p.EXIT_SUFFIX):
                continue
            try:
                with open(path, "rb") as f:
                    record = json.loads(f.read())
                container_id = record["id"]
                check_id(container_id, "container id")
                runtime = Runtime(record["runtime"], record["runtime_root"],
                                  record.get("runtime_args") or ())
            except (OSError, ValueError, KeyError, TypeError, p.ShimError) as e:
                log(f"{path}: unreadable exit record, ignored: {e}")
                continue
            container = Container(container_id, runtime, record.get("bundle", ""),
                                  record.get("log_path"), False)
            container.exit_record = record
            self.containers[container_id] = container

    # Children.

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

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            command = self.commands.pop(pid, None)
            if command is not None:
                if not command.done():
                    command.set_result(status)
                continue
            process = self.processes.pop(pid, None)
            if process is not None:
                self._exited(process, status)
                continue
            # An orphan of a container without its own pid namespace, or a process that
            # exited before we read its pid from the runtime's pid file.
            now = time.monotonic()
            self.unclaimed[pid] = (status, now)
            if len(self.unclaimed) > UNCLAIMED_LIMIT:
                for old, (_, when) in list(self.unclaimed.items()):
                    if now - when > UNCLAIMED_TTL or len(self.unclaimed) > UNCLAIMED_LIMIT:
                        del self.unclaimed[old]

    def _track(self, process: Process) -> None:
        """Watches a process the runtime started (and left to us, its subreaper)."""
        pid = process.pid
        info = proc_stat(pid)
        reaped = self.unclaimed.pop(pid, None)
        if reaped is not None and info is None:
            # Exited (and reaped by us) before the runtime's pid file was read. While the
            # pid exists, the entry is older than this process: the pid was reused.
            self._exited(process, reaped[0])
            return
        if info is None:
            log(f"pid {pid} is gone and was not our child: exit status unknown")
            self._exited(process, 255 << 8)
            return
        process.start_time = info[2]
        self.processes[pid] = process
        if info[1] != os.getpid():
            # Not our child (a runtime that keeps its own parent alive): watch it with a
            # pidfd; its exit status is not ours to read.
            log(f"pid {pid} is not our child (parent {info[1]}): exit status unknown")
            process.pidfd = os.pidfd_open(pid)
            self.loop.add_reader(process.pidfd, self._foreign_exited, process)

    def _foreign_exited(self, process: Process) -> None:
        self.loop.remove_reader(process.pidfd)
        os.close(process.pidfd)
        process.pidfd = -1
        if self.processes.pop(process.pid, None) is process:
            self._exited(process, 255 << 8)

    def _exited(self, process: Process, status: int) -> None:
        process.status = STOPPED
        process.exit_code = p.exit_code_of(status)
        process.finished_at = now_rfc3339nano()
        what = process.container.id + (f" exec {process.exec_id}" if process.exec_id else "")
        log(f"{what}: pid {process.pid} exited with {process.exit_code}")
        self.busy += 1
        self._spawn_task(self._finalize(process))

    async def _finalize(self, process: Process) -> None:
        try:
            container = process.container
            await process.stdio.wait_output_end(OUTPUT_END_TIMEOUT)
            if not process.busy:
                # Meanwhile: the log, the exit record, the event, the client's own work.
                self._delete_early(process)
            log_file = process.stdio.log
            if log_file is not None:
                closed = self.loop.create_future()
                log_file.close(lambda: self.loop.call_soon_threadsafe(_done, closed))
                try:
                    await asyncio.wait_for(closed, LOG_CLOSE_TIMEOUT)
                except TimeoutError:
                    log(f"{container.id}: the log writer is stuck; exit recorded anyway")
            oom_killed = False
            if process.exec_id is None:
                oom_killed = oom_kill_count(container.oom_file) > container.oom_base
                record = {"id": container.id, "pid": process.pid,
                          "exit_code": process.exit_code,
                          "finished_at": process.finished_at, "oom_killed": oom_killed,
                          "bundle": container.bundle, "log_path": container.log_path,
                          **container.runtime.to_dict()}
                try:
                    write_json_atomic(self._exit_path(container.id), record)
                except OSError as e:
                    log(f"{container.id}: cannot write the exit record: {e}")
                container.exit_record = record
            if process.busy:
                process.idle_waiter = self.loop.create_future()
                await process.idle_waiter
            self._delete_early(process)
            if oom_killed:
                self.broadcast(p.encode_event("oom", id=container.id))
            fields: dict[str, Any] = {"id": container.id}
            if process.exec_id is not None:
                fields["exec_id"] = process.exec_id
            self.broadcast(p.encode_event("exit", **fields, exit_code=process.exit_code,
                                          finished_at=process.finished_at, pid=process.pid))
            process.stdio.close()
        finally:
            if not process.finalized.done():
                process.finalized.set_result(None)
            self.busy -= 1
            self._activity()

    def _delete_early(self, process: Process) -> None:
        """The runtime's delete of a container whose client asked for it at exit; only once
        no request is about the init any more (a `start` still in the runtime would find
        its state gone)."""
        container = process.container
        if process.exec_id is not None or not container.delete_on_exit or \
                container.deleting or container.early_delete is not None:
            return

        async def delete() -> str | None:
            self.busy += 1
            try:
                return await self._run_runtime(container.runtime, "delete", "--force",
                                               container.id)
            finally:
                self.busy -= 1

        container.early_delete = self._spawn_task(delete())

    def _exit_path(self, container_id: str) -> str:
        return os.path.join(self.exec_root, container_id + p.EXIT_SUFFIX)

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

    # Connections.

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

    # Requests.

    def _container(self, params: dict[str, Any]) -> Container:
        container = self.containers.get(params["id"])
        if container is None:
            raise p.ShimError(f"no such container: {params['id']}", p.NOT_FOUND)
        return container

    def _process(self, params: dict[str, Any]) -> Process:
        container = self._container(params)
        exec_id = params.get("exec_id")
        if exec_id:
            process = container.execs.get(exec_id)
            if process is None:
                raise p.ShimError(f"no such exec: {exec_id}", p.NOT_FOUND)
            return process
        if container.init is None:
            raise p.ShimError(f"container {container.id} has no process", p.CONFLICT)
        return container.init

    async def hello(self, params: dict[str, Any]) -> dict[str, Any]:
        result = {"version": p.PROTOCOL_VERSION, "pid": os.getpid(),
                  "exec_root": self.exec_root, "containers": len(self.containers),
                  "processes": len(self.processes)}
        import tracemalloc

        if tracemalloc.is_tracing():  # PYTHONTRACEMALLOC=1: for measuring the shim
            result["traced_memory"] = tracemalloc.get_traced_memory()[0]
        return result

    async def create(self, params: dict[str, Any]) -> dict[str, Any]:
        container_id = params["id"]
        check_id(container_id, "container id")
        if container_id in self.containers:
            raise p.ShimError(f"container {container_id} exists", p.CONFLICT)
        runtime = Runtime(params["runtime"], params["runtime_root"],
                          params.get("runtime_args") or ())
        bundle = params["bundle"]
        log_path = params.get("log_path") or None
        stdin_open = bool(params.get("stdin_open"))
        container = Container(container_id, runtime, bundle, log_path, stdin_open)
        container.delete_on_exit = bool(params.get("delete_on_exit"))
        self.containers[container_id] = container
        _remove(self._exit_path(container_id))
        log_file = None
        if log_path:
            log_file = self.writer.open(
                log_path, _int(params, "log_max_size", p.DEFAULT_LOG_MAX_SIZE),
                _int(params, "log_max_files", p.DEFAULT_LOG_MAX_FILES))
        process = Process(container, None,
                          Stdio(self.loop, bool(params.get("terminal")), stdin_open, log_file))
        process.busy += 1
        try:
            await self._launch(process, params.get("console_size"),
                               lambda pid_file, console, log: runtime.create(
                                   container_id, bundle, pid_file, console, log))
        except BaseException:
            del self.containers[container_id]
            process.busy -= 1
            process.stdio.close()
            if log_file is not None:
                log_file.close(lambda: None)
            raise
        container.init = process
        container.oom_file = memory_oom_file(process.pid)
        container.oom_base = oom_kill_count(container.oom_file)
        try:
            self._track(process)
        finally:
            process.release()
        log(f"{container_id}: created, pid {process.pid}")
        return {"pid": process.pid}

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
                _remove(path)

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

    async def start(self, params: dict[str, Any]) -> dict[str, Any]:
        container = self._container(params)
        if params.get("exec_id"):
            process = self._process(params)
            if process.prepared is None:
                raise p.ShimError(f"exec {process.exec_id} is {process.status}", p.CONFLICT)
            return await self._start_exec(process)
        init = container.init
        if init is None or init.status != CREATED:
            raise p.ShimError(f"container {container.id} is {container.status}, not created",
                              p.CONFLICT)
        init.busy += 1
        try:
            error = await self._run_runtime(container.runtime, "start", container.id)
            if error is not None:
                raise p.ShimError(error, p.RUNTIME)
            if init.status == CREATED:
                init.status = RUNNING
        finally:
            init.release()
        return {}

    async def kill(self, params: dict[str, Any]) -> dict[str, Any]:
        container = self._container(params)
        signum = params.get("signal") or signal.SIGTERM
        if params.get("exec_id"):
            process = self._process(params)
            if not process.alive():
                raise p.ShimError(f"exec {process.exec_id} is not running", p.CONFLICT)
            os.kill(process.pid, signum)
            return {}
        if container.init is None or container.init.status == STOPPED:
            raise p.ShimError(f"container {container.id} is not running", p.CONFLICT)
        args = ["--all"] if params.get("all") else []
        error = await self._run_runtime(container.runtime, "kill", *args, container.id,
                                        str(signum))
        if error is not None:
            raise p.ShimError(error, p.RUNTIME)
        return {}

    async def state(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("exec_id"):
            return self._process(params).describe()
        return self._container(params).describe()

    async def list(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"containers": [c.describe() for c in self.containers.values()]}

    async def exec(self, params: dict[str, Any]) -> dict[str, Any]:
        container = self._container(params)
        exec_id = params["exec_id"]
        check_id(exec_id, "exec id")
        self._check_can_exec(container)
        if exec_id in container.execs:
            raise p.ShimError(f"exec {exec_id} exists", p.CONFLICT)
        terminal = bool(params.get("terminal"))
        process_doc = dict(params["process"])
        process_doc["terminal"] = terminal
        console_size = params.get("console_size")
        if console_size:
            process_doc["consoleSize"] = {"height": int(console_size.get("height", 0)),
                                          "width": int(console_size.get("width", 0))}
        process = Process(container, exec_id,
                          Stdio(self.loop, terminal, bool(params.get("stdin_open")), None))
        process.prepared = (process_doc, console_size)
        container.execs[exec_id] = process
        if params.get("start") is False:
            return {}
        return await self._start_exec(process)

    def _check_can_exec(self, container: Container) -> None:
        if container.init is None or container.init.status not in (CREATED, RUNNING) or \
                container.deleting:
            raise p.ShimError(f"container {container.id} is not running", p.CONFLICT)

    async def _start_exec(self, process: Process) -> dict[str, Any]:
        container = process.container
        assert process.prepared is not None and process.exec_id is not None
        self._check_can_exec(container)
        process_doc, console_size = process.prepared
        process.prepared = None
        process_file = os.path.join(self.exec_root,
                                    f"{TMP_PREFIX}{os.urandom(5).hex()}.process.json")
        with open(process_file, "w") as f:
            json.dump(process_doc, f)
        process.busy += 1
        try:
            await self._launch(process, console_size,
                               lambda pid_file, console, log: container.runtime.exec(
                                   container.id, process_file, pid_file, console, log))
        except BaseException:
            process.busy -= 1
            container.execs.pop(process.exec_id, None)
            process.stdio.close()
            raise
        finally:
            _remove(process_file)
        process.status = RUNNING
        try:
            self._track(process)
        finally:
            process.release()
        log(f"{container.id}: exec {process.exec_id}, pid {process.pid}")
        return {"pid": process.pid}

    async def resize(self, params: dict[str, Any]) -> dict[str, Any]:
        process = self._process(params)
        if process.status == STOPPED:
            raise p.ShimError("the process has exited", p.CONFLICT)
        try:
            process.stdio.resize(params["height"], params["width"])
        except ValueError as e:
            raise p.ShimError(str(e), p.CONFLICT) from None
        return {}

    async def close_stdin(self, params: dict[str, Any]) -> dict[str, Any]:
        self._process(params).stdio.close_stdin()
        return {}

    async def delete(self, params: dict[str, Any]) -> dict[str, Any]:
        container = self._container(params)
        force = bool(params.get("force"))
        exec_id = params.get("exec_id")
        if exec_id:
            process = self._process(params)
            if process.prepared is None:
                if process.status != STOPPED:
                    raise p.ShimError(f"exec {exec_id} is running", p.CONFLICT)
                await process.finalized
            process.stdio.close()
            container.execs.pop(exec_id, None)
            return {}
        if container.deleting or container.status == CREATING:
            raise p.ShimError(f"container {container.id} is being "
                              f"{'deleted' if container.deleting else 'created'}", p.CONFLICT)
        init = container.init
        if init is not None and init.status != STOPPED and not force:
            raise p.ShimError(f"container {container.id} is {init.status}: stop it first or "
                              "force", p.CONFLICT)
        container.deleting = True
        try:
            early, container.early_delete = container.early_delete, None
            error = await early if early is not None else None
            if early is None or (error is not None and not is_not_found(error)):
                error = await self._run_runtime(container.runtime, "delete",
                                                *(["--force"] if force else []),
                                                container.id)
            if error is not None and not is_not_found(error):
                raise p.ShimError(error, p.RUNTIME)
            waits = []
            for process in container.execs.values():
                if process.prepared is None:
                    waits.append(process.finalized)
                else:
                    process.stdio.close()
            if init is not None:
                waits.append(init.finalized)
            if waits:
                done, pending = await asyncio.wait(waits, timeout=10)
                if pending:
                    raise p.ShimError(f"container {container.id}: processes did not exit",
                                      p.INTERNAL)
        finally:
            container.deleting = False
        _remove(self._exit_path(container.id))
        self.containers.pop(container.id, None)
        log(f"{container.id}: deleted")
        self._activity()
        return {}

    async def shutdown(self, params: dict[str, Any]) -> dict[str, Any]:
        live = len(self.processes)
        if live:
            raise p.ShimError(f"{live} processes are still supervised", p.CONFLICT)
        if self.busy > 1:  # other requests (a create?) or exits being recorded
            raise p.ShimError("requests are in progress", p.CONFLICT)
        return {}


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _int(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    return default if value is None else value


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
