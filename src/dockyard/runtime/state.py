"""What the runtime knows of each container, on disk under --root.

<root>/<id>/state.json is written atomically once `create` has finished; while it is absent
the container is still being created. The status is never stored: it is derived from the
init process (alive, with the same start time), the exec FIFO (present until `start`) and
the freezer, so `state` tells the truth after the process died.

Like the other modules on the path of `start`, `state`, `kill` and `delete` (cli, args,
container, start, delete), it uses `posix` rather than `os`: `os` takes about 1 ms to
import, a tenth of such a command's whole run.
"""

import posix

from .errors import ContainerNotFound, RuntimeFailure
from .jsonio import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
SECCOMP_CACHE = "seccomp@cache"  # compiled filters (seccomp_bpf.py); '@' is not in any id
OCI_VERSION = "1.2.0"

# runc's ^[\w+-\.]+$ with Go's ASCII \w.
_ID_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def validate_id(container_id: str) -> None:
    if not container_id:
        raise RuntimeFailure("container id cannot be empty")
    if not _ID_CHARACTERS.issuperset(container_id) or container_id in (".", ".."):
        raise RuntimeFailure(f"invalid container id format: {container_id}")


class ContainerState:
    FIELDS = ("id", "pid", "bundle", "rootfs", "created", "owner", "init_start_time", "config",
              "cgroup_paths", "annotations", "namespace_paths")

    def __init__(self, id: str, pid: int, bundle: str, rootfs: str, created: str, owner: str,
                 init_start_time: int, config: "dict[str, Any]",
                 cgroup_paths: dict[str, str] | None = None,
                 annotations: dict[str, str] | None = None,
                 namespace_paths: dict[str, str] | None = None) -> None:
        self.id = id
        self.pid = pid
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.owner = owner
        self.init_start_time = init_start_time  # from /proc/<pid>/stat: a reused pid differs
        self.config = config
        self.cgroup_paths = cgroup_paths or {}
        self.annotations = annotations or {}
        self.namespace_paths = namespace_paths or {}

    def to_dict(self) -> "dict[str, Any]":
        return {name: getattr(self, name) for name in self.FIELDS}


class StateStore:
    """The --root directory: one subdirectory per container."""

    def __init__(self, root: str) -> None:
        if not root.startswith("/"):
            root = f"{posix.getcwd()}/{root}"
        self.root = root.rstrip("/") or "/"

    def dir_of(self, container_id: str) -> str:
        return f"{self.root}/{container_id}"

    def reserve(self, container_id: str) -> str:
        """Makes the container's directory; fails if the id is taken."""
        import os

        validate_id(container_id)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        path = self.dir_of(container_id)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise RuntimeFailure(f"container with id exists: {container_id}") from None
        return path

    def save(self, state: ContainerState) -> None:
        # Not durable: like runc's, this state lives on tmpfs (/run) and means nothing
        # after a reboot.
        from ..atomicfile import write_atomic

        write_atomic(f"{self.dir_of(state.id)}/{STATE_FILE}", dumps(state.to_dict()))

    def load(self, container_id: str) -> ContainerState:
        validate_id(container_id)
        try:
            with open(f"{self.dir_of(container_id)}/{STATE_FILE}", "rb") as f:
                doc = loads(f.read())
        except FileNotFoundError:
            raise ContainerNotFound("container does not exist") from None
        return ContainerState(**doc)

    def ids(self) -> list[str]:
        try:
            names = posix.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if exists(f"{self.root}/{n}/{STATE_FILE}"))

    def fifo_path(self, container_id: str) -> str:
        return f"{self.dir_of(container_id)}/{EXEC_FIFO}"

    def remove(self, container_id: str) -> None:
        """Removes the container's directory and whatever is in it (as runc does)."""
        path = self.dir_of(container_id)
        try:
            names = posix.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                posix.unlink(f"{path}/{name}")
            except FileNotFoundError:
                pass
            except OSError:  # a directory someone put there
                import shutil

                shutil.rmtree(f"{path}/{name}", ignore_errors=True)
        try:
            posix.rmdir(path)
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


def exists(path: str) -> bool:
    try:
        posix.stat(path)
    except OSError:
        return False
    return True


def now_rfc3339() -> str:
    import time

    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"
