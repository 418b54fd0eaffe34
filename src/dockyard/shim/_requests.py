"""The requests of the shim's protocol (protocol.py): create, start, exec, kill, delete...
A part of Shim (_server.py), which holds the state."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from typing import Any

from . import protocol as p
from ._exit_records import TMP_PREFIX, remove
from ._records import CREATED, CREATING, RUNNING, STOPPED, Container, Process, check_id
from ._runtime import Runtime, is_not_found
from ._stdio import Stdio
from ._system import log, memory_oom_file, oom_kill_count
from .jsonlog import LogWriter


class Requests:
    loop: asyncio.AbstractEventLoop
    exec_root: str
    containers: dict[str, Container]
    processes: dict[int, Process]
    busy: int
    writer: LogWriter

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
        remove(self._exit_path(container_id))
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
        return self._started(process, f"{container_id}: created")

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
            remove(process_file)
        process.status = RUNNING
        return self._started(process, f"{container.id}: exec {process.exec_id}")

    def _started(self, process: Process, what: str) -> dict[str, Any]:
        """Hands a process the runtime started to the reaper, once the launching request
        lets go of it."""
        try:
            self._track(process)
        finally:
            process.release()
        log(f"{what}, pid {process.pid}")
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
        remove(self._exit_path(container.id))
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



def _int(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    return default if value is None else value

