"""`docker exec`: processes started in a running container through the shim. Like
Docker, exec instances live in memory only."""

from __future__ import annotations

import json
import secrets
import threading
from typing import TYPE_CHECKING, Any

from .errors import Conflict, EngineError, NotFound
from .oci_spec import all_capabilities
from .users import resolve_user

if TYPE_CHECKING:
    from .containers import ContainerService


class ExecService:
    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self._lock = threading.Condition()
        self._execs: dict[str, dict[str, Any]] = {}
        containers.execs = self

    def create(self, ref: str, config: dict[str, Any]) -> str:
        record = self.containers.get(ref)
        if not record["State"]["Running"]:
            raise Conflict(f"Container {record['Id']} is not running")
        if record["State"]["Paused"]:
            raise Conflict(f"Container {record['Id']} is paused, unpause the container "
                           "before exec")
        if not config.get("Cmd"):
            from .errors import InvalidParameter

            raise InvalidParameter("No exec command specified")
        exec_id = secrets.token_hex(32)
        with self._lock:
            self._execs[exec_id] = {
                "ID": exec_id, "ContainerID": record["Id"], "Running": False, "ExitCode": None,
                "Pid": 0, "OpenStdin": bool(config.get("AttachStdin")),
                "OpenStdout": bool(config.get("AttachStdout")),
                "OpenStderr": bool(config.get("AttachStderr")), "CanRemove": False,
                "DetachKeys": config.get("DetachKeys") or "",
                "ProcessConfig": {
                    "tty": bool(config.get("Tty")), "entrypoint": config["Cmd"][0],
                    "arguments": list(config["Cmd"][1:]),
                    "privileged": bool(config.get("Privileged")),
                    "user": config.get("User") or ""},
                "_config": config,
            }
        record["ExecIDs"] = [*(record.get("ExecIDs") or []), exec_id]
        self.containers.events.emit("container", f"exec_create: {' '.join(config['Cmd'])}",
                                    record["Id"], self.containers._attributes(record))
        return exec_id

    def get(self, exec_id: str) -> dict[str, Any]:
        with self._lock:
            if exec_id not in self._execs:
                raise NotFound(f"No such exec instance: {exec_id}")
            return self._execs[exec_id]

    def inspect(self, exec_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.get(exec_id).items() if not k.startswith("_")}

    def start(self, exec_id: str, attach: dict[str, bool] | None) -> Any:
        """Starts the process; with `attach` (the streams wanted), first opens the shim's
        attach stream for it and returns that socket, so no output is missed."""
        instance = self.get(exec_id)
        if instance["Running"] or instance["ExitCode"] is not None:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        record = self.containers.get(instance["ContainerID"])
        if not record["State"]["Running"]:
            raise Conflict(f"Container {record['Id']} is not running")
        process = self._process(record, instance["_config"])
        instance["Running"] = True
        try:
            self.containers._request(
                "exec", record["Id"], exec_id, process, terminal=process["terminal"],
                stdin_open=instance["OpenStdin"], start=False)
        except EngineError as error:
            from .containers import exit_code_for_start_error

            with self._lock:
                instance.update(Running=False, ExitCode=exit_code_for_start_error(str(error)))
                self._lock.notify_all()
            raise
        sock = None
        if attach is not None:
            sock = self.containers.attach(record["Id"], attach, exec_id)
        result = self.containers._request("start", record["Id"], exec_id)
        instance["Pid"] = int(result.get("pid") or 0)
        self.containers.events.emit(
            "container", f"exec_start: {' '.join(instance['_config']['Cmd'])}", record["Id"],
            self.containers._attributes(record))
        return sock

    def _process(self, record: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
        bundle = self.containers.store.dir_of(record["Id"]) / "bundle" / "config.json"
        spec = json.loads(bundle.read_text())
        process = dict(spec["process"])
        process["args"] = list(config["Cmd"])
        process["terminal"] = bool(config.get("Tty"))
        env = {e.split("=", 1)[0]: e for e in process.get("env") or []}
        for item in config.get("Env") or []:
            env[item.split("=", 1)[0]] = item
        process["env"] = list(env.values())
        if config.get("WorkingDir"):
            process["cwd"] = config["WorkingDir"]
        if config.get("User"):
            rootfs = self.containers.store.dir_of(record["Id"]) / "rootfs"
            process["user"] = resolve_user(rootfs, config["User"], [])
        if config.get("Privileged"):
            caps = all_capabilities()
            process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        process.pop("consoleSize", None)
        return process

    def exited(self, event: dict[str, Any]) -> None:
        with self._lock:
            instance = self._execs.get(event.get("exec_id", ""))
            if instance is None:
                return
            instance.update(Running=False, ExitCode=int(event.get("exit_code", 0)), Pid=0)
            self._lock.notify_all()
        try:
            record = self.containers.get(instance["ContainerID"])
            self.containers.events.emit("container", "exec_die", record["Id"], {
                **self.containers._attributes(record), "execID": instance["ID"],
                "exitCode": str(instance["ExitCode"])})
        except NotFound:
            pass

    def wait(self, exec_id: str, timeout: float | None = None) -> int | None:
        with self._lock:
            self._lock.wait_for(lambda: self.get(exec_id)["ExitCode"] is not None, timeout)
            return self.get(exec_id)["ExitCode"]


def exec_exited(containers: ContainerService, event: dict[str, Any]) -> None:
    execs: ExecService | None = getattr(containers, "execs", None)
    if execs is not None:
        execs.exited(event)
