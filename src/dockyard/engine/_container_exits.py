"""What follows a container's exit: its state saved, the runtime's delete and the stop
of its network and root file system, the "die" event, then --rm's removal or the restart
policy; and waiting for those (`wait`, `wait_for_exit`). A part of ContainerService
(engine/containers.py), which holds the state these methods use."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from ..shim.protocol import EXIT_SUFFIX
from ..snapshot import SnapshotError
from .errors import EngineError, InvalidParameter, NotFound
from .timefmt import ZERO_TIME, rfc3339_now


class ContainerExits:
    # State and methods of ContainerService these use (set in its __init__).
    store: Any
    options: Any
    snapshots: Any
    networks: Any
    events: Any
    _changed: threading.Condition
    _helpers: Any
    _released: set[str]
    _restarting: set[str]

    def _on_exit(self, event: dict[str, Any]) -> None:
        if event.get("exec_id"):
            from .execs import exec_exited

            exec_exited(self, event)
            return
        try:
            record = self.store.get(event["id"])
        except NotFound:
            return
        # Not "is it running?" here: a quick process can exit before start() has marked
        # it running; _finish waits for start's transition and checks then.
        self._finish(record, int(event.get("exit_code", 0)),
                     event.get("finished_at") or rfc3339_now())

    def _finish(self, record: dict[str, Any], exit_code: int, finished_at: str) -> None:
        with self._transition(record["Id"]):
            self._finish_locked(record, exit_code, finished_at)

    def _finish_locked(self, record: dict[str, Any], exit_code: int,
                       finished_at: str) -> None:
        container_id = record["Id"]
        if not record["State"]["Running"]:
            return  # handled already (an event and a reconcile may both report it)
        record["State"].update(_state("exited"), ExitCode=exit_code, FinishedAt=finished_at,
                               StartedAt=record["State"]["StartedAt"])
        # A container removed when it stops is not saved as exited: its record goes in a
        # moment, and a daemon killed before that finds it "running", gone from the shim,
        # and finishes (and removes) it at its next start.
        auto_remove = bool(record["HostConfig"].get("AutoRemove")) and \
            container_id not in self._restarting
        if not auto_remove:
            self.store.save(record)
        # The runtime's delete (in the shim) and our side of the stop (network, root file
        # system) do not depend on each other: the delete runs on a helper thread meanwhile.
        deleting = self._helpers.submit(self._request, "delete", container_id, force=True)
        if self.networks is not None:
            self.networks.detach(record)
        rootfs = self.store.dir_of(container_id) / "rootfs"
        if _is_mounted(rootfs):
            try:
                self.snapshots.unmount(rootfs)
            except (SnapshotError, OSError):
                pass
        try:
            deleting.result()
            self._released.add(container_id)
        except EngineError:
            pass  # the removal tries again
        if self.networks is not None and not auto_remove:
            self.store.save(record)
        self._release_volumes(record)
        self.events.emit("container", "die", container_id,
                         {**self._attributes(record), "exitCode": str(exit_code)})
        self._notify()
        if auto_remove:
            # Here, not on another thread: `docker run --rm` waits for exactly this.
            self._auto_remove(container_id)
        elif _should_restart(record):
            threading.Thread(target=self._restart_after_exit, args=(container_id,),
                             daemon=True).start()

    def _auto_remove(self, container_id: str) -> None:
        try:
            self.remove(container_id, force=True, volumes=True)
        except EngineError:
            pass

    def _restart_after_exit(self, container_id: str) -> None:
        try:
            record = self.store.get(container_id)
            record["RestartCount"] = record.get("RestartCount", 0) + 1
            time.sleep(min(0.1 * 2 ** min(record["RestartCount"], 8), 60))
            self.start(container_id)
        except EngineError:
            pass

    def reconcile(self) -> None:
        """After a (re)start of the daemon or the shim connection: containers recorded as
        running that the shim no longer has get their exit from the shim's exit file."""
        try:
            listing = self._request("list")
        except EngineError:
            return
        alive = {c["id"] for c in listing.get("containers", [])
                 if c.get("status") in ("created", "running")}
        for record in self.store.all():
            if record["State"]["Running"] and record["Id"] not in alive:
                exit_file = self.options.exec_root / f"{record['Id']}{EXIT_SUFFIX}"
                code, finished = 255, rfc3339_now()
                if exit_file.exists():
                    doc = json.loads(exit_file.read_text())
                    code, finished = doc.get("exit_code", 255), doc.get("finished_at", finished)
                self._finish(record, int(code), finished)

    # -- waiting --------------------------------------------------------------------------

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_for_exit(self, container_id: str, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                try:
                    record = self.store.get(container_id)
                except NotFound:
                    return True
                if not record["State"]["Running"]:
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining if remaining is not None else 1.0)

    def wait(self, ref: str, condition: str = "not-running") -> dict[str, Any]:
        """POST /containers/{id}/wait: blocks until the condition; Docker's result.
        not-running: now if stopped; next-exit: the next exit from now; removed: until the
        container is gone (after --rm's removal)."""
        record = self.store.get(ref)
        container_id = record["Id"]
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: \"{condition}\"")
        state = record["State"]
        finished_at = state["FinishedAt"]
        with self._changed:
            while True:
                try:
                    self.store.get(container_id)
                except NotFound:
                    return _wait_result(record)
                exited = not state["Running"]
                if condition == "not-running" and exited:
                    return _wait_result(record)
                if condition == "next-exit" and exited and state["FinishedAt"] != finished_at:
                    return _wait_result(record)
                self._changed.wait(1.0)



def _state(status: str) -> dict[str, Any]:
    return {"Status": status, "Running": status in ("running", "paused"),
            "Paused": status == "paused", "Restarting": False, "OOMKilled": False,
            "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
            "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


def _ephemeral(record: dict[str, Any]) -> bool:
    """A container removed when it stops (--rm): nothing of it is forced to the disk (its
    record, its snapshot, its writes: see the volatile mount), only written atomically, as
    a killed daemon needs. A power loss may take it, which is what --rm asks for anyway;
    on a busy disk each fsync waits for everyone's dirty data (several ms each)."""
    return bool(record["HostConfig"].get("AutoRemove"))


def _is_mounted(path: Path) -> bool:
    import os

    return os.path.ismount(path)


def _wait_result(record: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"StatusCode": record["State"]["ExitCode"]}
    if record["State"].get("Error"):
        result["Error"] = {"Message": record["State"]["Error"]}
    return result


def _should_restart(record: dict[str, Any]) -> bool:
    policy = (record["HostConfig"].get("RestartPolicy") or {})
    name = policy.get("Name") or "no"
    if record["State"].get("RemovalInProgress") or record.get("_stopped_by_user"):
        return False
    if name == "always" or name == "unless-stopped":
        return True
    if name == "on-failure" and record["State"]["ExitCode"] != 0:
        limit = int(policy.get("MaximumRetryCount") or 0)
        return limit == 0 or record.get("RestartCount", 0) < limit
    return False
