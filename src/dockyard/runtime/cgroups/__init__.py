"""Control groups for one container: the interface the runtime uses, for cgroup v1 and v2.

`open_cgroup` picks the implementation from what is mounted at /sys/fs/cgroup. Both take
the OCI `linux.resources` object as a dict (already type-checked by config.py) and raise
`CgroupError` naming the field when the kernel refuses a value.

This package's own module is on the path of `delete`, so it uses `posix`, not `os` (see
state.py); the managers in v1.py and v2.py are loaded only when needed.
"""

import posix

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any, Protocol

CGROUP_ROOT = "/sys/fs/cgroup"


class CgroupError(RuntimeError):
    """A cgroup operation failed; the message names the file or the resource field."""


if TYPE_CHECKING:

    class CgroupManager(Protocol):
        version: int  # 1 or 2

        def create(self) -> None:
            """Creates the container's cgroup directories (idempotent)."""

        def add_process(self, pid: int) -> None:
            """Moves pid (and, on v1, into every hierarchy) into the container's cgroup."""

        def apply_resources(self, resources: dict[str, Any]) -> None:
            """Writes OCI linux.resources (memory, cpu, pids, blockIO, devices, ...)."""

        def pids(self) -> list[int]:
            """Every process in the cgroup and its descendants."""

        def freeze(self) -> None: ...

        def thaw(self) -> None: ...

        def is_frozen(self) -> bool: ...

        def destroy(self) -> None:
            """Kills what is left (SIGKILL), waits for it to go, and removes the directories."""

        def paths(self) -> dict[str, str]:
            """Hierarchy name -> absolute directory ("" is the key of the v2 unified tree)."""

        def stats(self) -> dict[str, Any]:
            """Usage for `docker stats`: memory usage/limit, cpu usage (ns), pids current."""


def start_migration_warmup(root: str = CGROUP_ROOT) -> None:
    """On cgroup v2, starts on a thread a no-op move of this process into its own cgroup.

    A move of a process into a v2 cgroup takes a global lock whose first writer waits for
    an RCU grace period (several ms; writers close behind it don't wait). Starting one now,
    while the runtime still parses and prepares, lets the real move of the container's
    process share that wait. (On v1, join_self avoids the lock altogether.)
    """
    # Only a cgroup2 root has cgroup.controllers: one stat instead of reading mountinfo.
    try:
        posix.stat(f"{root}/cgroup.controllers")
    except OSError:
        return
    from ._common import own_procs_file

    path = own_procs_file(root)
    if path is None:
        return
    import _thread

    def move_self() -> None:
        try:
            fd = posix.open(path, posix.O_WRONLY | posix.O_CLOEXEC)
            try:
                posix.write(fd, b"0")  # 0: the writer itself
            finally:
                posix.close(fd)
        except OSError:
            pass  # only a head start: nothing depends on it

    _thread.start_new_thread(move_self, ())


def is_unified(paths: dict[str, str]) -> bool:
    """Whether paths() came from a cgroup v2 manager (one tree, keyed "")."""
    return set(paths) == {""}


def cgroup_from_paths(paths: dict[str, str], root: str = CGROUP_ROOT) -> "CgroupManager":
    """The manager for the directories a manager's paths() gave (saved in the state)."""
    if is_unified(paths):
        from .v2 import CgroupV2

        return CgroupV2.from_paths(paths, root)
    from .v1 import CgroupV1

    return CgroupV1.from_paths(paths, root)


def join_self(paths: dict[str, str]) -> None:
    """Moves the calling process, which must be single-threaded, into the cgroup at these
    paths (as paths() gave them). Done by the forked child that becomes a container's
    process, on the critical path of `create`: it needs no manager module loaded."""
    if is_unified(paths):
        # v2 moves whole processes only through cgroup.procs (cgroup.threads stays within
        # a threaded domain), so this takes the global lock; see start_migration_warmup.
        targets = [f"{paths['']}/cgroup.procs"]
    else:
        # "0" in `tasks` moves the calling thread, and for the current thread the kernel
        # skips the global threadgroup lock whose first writer waits for an RCU grace
        # period (~10 ms): for a single-threaded process this is the whole move, ~40x
        # faster than cgroup.procs.
        targets = [f"{path}/tasks" for path in dict.fromkeys(paths.values())]
    for target in targets:
        try:
            fd = posix.open(target, posix.O_WRONLY | posix.O_CLOEXEC)
            try:
                posix.write(fd, b"0")
            finally:
                posix.close(fd)
        except OSError as e:
            directory, _, name = target.rpartition("/")
            raise CgroupError(f"adding this process to {directory}: writing 0 to {name}: "
                              f"{e.strerror}") from e


def destroy_at(paths: dict[str, str], root: str = CGROUP_ROOT) -> None:
    """destroy() of the cgroup at these paths (as paths() gave them)."""
    if not remove_if_empty(paths.values()):
        cgroup_from_paths(paths, root).destroy()


def remove_if_empty(directories: "Iterable[str]") -> bool:
    """The usual end of a container, all its processes gone: one rmdir per directory,
    without reading cgroup.procs or walking the tree first. False if the kernel refuses
    (EBUSY: tasks or children left), and destroy() has the rest to do."""
    for path in dict.fromkeys(directories):  # comounted v1 hierarchies once
        try:
            posix.rmdir(path)
        except FileNotFoundError:
            continue
        except OSError:
            return False
    return True


def open_cgroup(cgroups_path: str, container_id: str, root: str = CGROUP_ROOT) -> "CgroupManager":
    """The manager for cgroupsPath (relative paths sit under this process's own cgroup;
    an empty path means /<id>, as in runc), on v2 if `root` is a cgroup2 mount, else v1."""
    from ._common import is_cgroup2_mount, resolve_relative_path

    relative = resolve_relative_path(cgroups_path, container_id, root)
    if is_cgroup2_mount(root):
        from .v2 import CgroupV2

        return CgroupV2(root, relative)
    from .v1 import CgroupV1

    return CgroupV1(root, relative)
