"""What the shim knows of its containers and their processes (in memory; their exit on disk
is _exit_records.py's)."""

from __future__ import annotations

import asyncio
from typing import Any

from . import protocol as p
from ._runtime import Runtime
from ._stdio import Stdio
from ._system import proc_stat

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

