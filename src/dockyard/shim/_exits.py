"""The shim's children and their exits: reaping (it is their subreaper), watching the
processes the runtime started, and after an exit its log closed, its record written, the
runtime's early delete started and the event sent. A part of Shim (_server.py), which holds
the state."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from . import protocol as p
from ._records import STOPPED, Process
from ._system import log, oom_kill_count, proc_stat
from .jsonlog import now_rfc3339nano

OUTPUT_END_TIMEOUT = 2.0  # after an exit, how long output may keep coming (background
#                           processes that hold the pipe)
UNCLAIMED_TTL = 60.0
LOG_CLOSE_TIMEOUT = 10.0  # a disk so slow that the exit is recorded without its log
UNCLAIMED_LIMIT = 256


class Exits:
    loop: asyncio.AbstractEventLoop
    processes: dict[int, Process]
    commands: dict[int, asyncio.Future[int]]
    unclaimed: dict[int, tuple[int, float]]
    busy: int

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
                container.exit_record = self._write_exit_record(container, process,
                                                                oom_killed)
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



def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)

