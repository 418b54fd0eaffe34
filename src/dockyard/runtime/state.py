"""What the runtime knows of each container, on disk under --root.

<root>/<id>/state.json is written atomically once `create` has finished; while it is absent
the container is still being created. The status is never stored: it is derived from the
init process (alive, with the same start time), the exec FIFO (present until `start`) and
the freezer, so `state` tells the truth after the process died.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ContainerNotFound, RuntimeFailure

DEFAULT_ROOT = "/run/dockyard-runc"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
OCI_VERSION = "1.2.0"

_ID_PATTERN = re.compile(r"^[\w+\-.]+$")


def validate_id(container_id: str) -> None:
    if not container_id:
        raise RuntimeFailure("container id cannot be empty")
    if not _ID_PATTERN.match(container_id) or container_id in (".", ".."):
        raise RuntimeFailure(f"invalid container id format: {container_id}")


@dataclass
class ContainerState:
    id: str
    pid: int
    bundle: str
    rootfs: str
    created: str
    owner: str
    init_start_time: int  # from /proc/<pid>/stat, to tell a reused pid apart
    config: dict[str, Any]
    cgroup_paths: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    namespace_paths: dict[str, str] = field(default_factory=dict)


class StateStore:
    """The --root directory: one subdirectory per container."""

    def __init__(self, root: str) -> None:
        self.root = root

    def dir_of(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def reserve(self, container_id: str) -> str:
        """Makes the container's directory; fails if the id is taken."""
        validate_id(container_id)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        path = self.dir_of(container_id)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise RuntimeFailure(f"container with id exists: {container_id}") from None
        return path

    def save(self, state: ContainerState) -> None:
        path = os.path.join(self.dir_of(state.id), STATE_FILE)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)

    def load(self, container_id: str) -> ContainerState:
        validate_id(container_id)
        try:
            with open(os.path.join(self.dir_of(container_id), STATE_FILE)) as f:
                doc = json.load(f)
        except FileNotFoundError:
            raise ContainerNotFound("container does not exist") from None
        return ContainerState(**doc)

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names
                      if os.path.exists(os.path.join(self.root, n, STATE_FILE)))

    def fifo_path(self, container_id: str) -> str:
        return os.path.join(self.dir_of(container_id), EXEC_FIFO)

    def remove(self, container_id: str) -> None:
        path = self.dir_of(container_id)
        for name in (STATE_FILE, EXEC_FIFO, f"{STATE_FILE}.tmp"):
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                pass
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat, or None if the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses; the fields follow the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_alive(state: ContainerState) -> bool:
    return state.pid > 0 and process_start_time(state.pid) == state.init_start_time


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"
