"""The shim's files in its exec root: the exit record of each container (it outlives the shim,
for the daemon and the next shim) and the temporary files of launches. A part of Shim
(_server.py), which holds the state."""

from __future__ import annotations

import json
import os
from typing import Any

from . import protocol as p
from ._records import Container, Process, check_id
from ._runtime import Runtime
from ._system import log, write_json_atomic

TMP_PREFIX = ".tmp-"


class ExitRecords:
    exec_root: str
    containers: dict[str, Container]

    def load_exit_records(self) -> None:
        """Exit records written by an earlier shim of this exec root: still in `list`
        until `delete`."""
        for name in sorted(os.listdir(self.exec_root)):
            path = os.path.join(self.exec_root, name)
            if name.startswith(TMP_PREFIX) or name.endswith(f"{p.EXIT_SUFFIX}.tmp"):
                remove(path)
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


    def _exit_path(self, container_id: str) -> str:
        return os.path.join(self.exec_root, container_id + p.EXIT_SUFFIX)

    def _write_exit_record(self, container: Container, process: Process,
                           oom_killed: bool) -> dict[str, Any]:
        """The init's exit, written whatever happens to the shim next; returns the record."""
        record = {"id": container.id, "pid": process.pid,
                  "exit_code": process.exit_code,
                  "finished_at": process.finished_at, "oom_killed": oom_killed,
                  "bundle": container.bundle, "log_path": container.log_path,
                  **container.runtime.to_dict()}
        try:
            write_json_atomic(self._exit_path(container.id), record)
        except OSError as e:
            log(f"{container.id}: cannot write the exit record: {e}")
        return record


def remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
