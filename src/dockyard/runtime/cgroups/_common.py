"""What the v1 and v2 managers share: where the container's cgroup goes, what is mounted
where, and reading and writing control files so that every error names the OCI field.

The two readers of /proc (`read_mountinfo`, `read_self_cgroup`) are plain module functions
so that tests can replace them.
"""

import errno
import os
import time

from ..linux import SIGKILL
from . import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

RMDIR_TIMEOUT = 1.0  # seconds a just-emptied cgroup may stay busy


class Mount:
    """One line of /proc/self/mountinfo (a plain class: typing.NamedTuple is slow to import)."""

    __slots__ = ("root", "mountpoint", "fstype", "super_options")

    def __init__(self, root: str, mountpoint: str, fstype: str,
                 super_options: tuple[str, ...]) -> None:
        self.root = root  # the directory of the filesystem that is mounted (field 4)
        self.mountpoint = mountpoint
        self.fstype = fstype
        self.super_options = super_options


def read_mountinfo() -> str:
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def read_self_cgroup() -> str:
    with open("/proc/self/cgroup", encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def mount_table() -> list[Mount]:
    mounts = []
    for line in read_mountinfo().splitlines():
        fields = line.split()
        # Optional fields sit between field 6 and the "-" separator; their number varies.
        if "-" not in fields[6:]:
            continue
        sep = fields.index("-", 6)
        if len(fields) < sep + 4:
            continue
        mounts.append(Mount(_unescape(fields[3]), _unescape(fields[4]), fields[sep + 1],
                            tuple(fields[sep + 3].split(","))))
    return mounts


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    head, *rest = field.split("\\")
    out = [head]
    for part in rest:
        try:
            out.append(chr(int(part[:3], 8)) + part[3:])
        except ValueError:
            out.append("\\" + part)
    return "".join(out)


def mount_at(path: str) -> Mount | None:
    target = os.path.normpath(path)
    found = None
    for mount in mount_table():
        if mount.mountpoint == target:
            found = mount  # the last mount on a point is the one visible there
    return found


def is_cgroup2_mount(path: str) -> bool:
    mount = mount_at(path)
    return mount is not None and mount.fstype == "cgroup2"


def own_cgroups() -> dict[str, str]:
    """Controller (or "name=systemd"; "" for the v2 tree) -> this process's cgroup."""
    owned: dict[str, str] = {}
    for line in read_self_cgroup().splitlines():
        _, _, rest = line.partition(":")
        controllers, sep, path = rest.partition(":")
        if not sep:
            continue
        for name in controllers.split(",") if controllers else [""]:
            owned[name] = path
    return owned


def own_procs_file(root: str) -> str | None:
    """The cgroup.procs of this process's own cgroup in some hierarchy under root."""
    owned = own_cgroups()
    for mount in mount_table():
        if mount.mountpoint != root and not mount.mountpoint.startswith(root + "/"):
            continue
        if mount.fstype == "cgroup2":
            name: str | None = ""
        elif mount.fstype == "cgroup":
            name = next((o for o in mount.super_options if o in owned), None)
        else:
            continue
        if name is None or name not in owned:
            continue
        inner = relative_to_mount(owned[name], mount.root).lstrip("/")
        path = os.path.join(mount.mountpoint, inner, "cgroup.procs")
        if os.path.exists(path):
            return path
    return None


def relative_to_mount(path: str, mount_root: str) -> str:
    """/proc/self/cgroup names cgroups from the hierarchy's root, but a mount may show only a
    subtree of it (a bind mount of /docker/abc, say); make `path` relative to that subtree."""
    if mount_root in ("", "/"):
        return path
    if path == mount_root or path.startswith(mount_root + "/"):
        return path[len(mount_root):] or "/"
    return path


def resolve_relative_path(cgroups_path: str, container_id: str, root: str) -> str:
    """Where the container's cgroup goes, below the root of each hierarchy.

    An absolute or empty cgroupsPath gives an absolute result ("/docker/abc"). A relative
    one goes below this process's own cgroup: on v2 the result is absolute; on v1 every
    hierarchy may place this process elsewhere, so the cleaned relative path ("foo/bar") is
    returned and CgroupV1 joins it to the own cgroup of each hierarchy, as runc does.
    """
    if not cgroups_path:
        if not container_id:
            raise CgroupError("linux.cgroupsPath: empty, and there is no container id to use")
        # runc's choice: a cgroup named after the container at each hierarchy's root.
        cgroups_path = f"/{container_id}"
    if "/" not in cgroups_path and cgroups_path.count(":") == 2:
        raise CgroupError(f"linux.cgroupsPath: {cgroups_path!r} is a systemd path "
                          "(slice:prefix:name); systemd cgroup paths are not supported, "
                          "give a path such as /dockyard/<id>")
    inner = "/".join(clean_parts(cgroups_path))
    if cgroups_path.startswith("/"):
        return "/" + inner
    mount = mount_at(root)
    if mount is None or mount.fstype != "cgroup2":
        return inner
    own = relative_to_mount(own_cgroups().get("", "/"), mount.root)
    return own.rstrip("/") + "/" + inner


def clean_parts(path: str) -> list[str]:
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise CgroupError(f"linux.cgroupsPath: {path!r} must not contain '..'")
    if not parts:
        # The root cgroup holds every process on the host: destroy() would kill them all.
        raise CgroupError(f"linux.cgroupsPath: {path!r} names the root cgroup; "
                          "a container needs a cgroup of its own")
    return parts


def write_file(path: str, value: str) -> None:
    """One write(2) of the whole value, as cgroupfs parses each write on its own. No O_CREAT:
    a missing control file means a missing controller, not a file to create."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def write_value(directory: str, name: str, value: object, field: str = "",
                missing: str = "") -> None:
    """Writes one control file; the CgroupError names `field` (the OCI field, or what was
    being done), the file and the kernel's reason, plus `missing` if the file is absent."""
    text = str(value)
    try:
        write_file(os.path.join(directory, name), text)
    except OSError as e:
        reason = os.strerror(e.errno) if e.errno else str(e)
        if e.errno == errno.ENOENT and missing:
            reason += f" ({missing})"
        prefix = f"{field}: " if field else ""
        raise CgroupError(f"{prefix}writing {text} to {name}: {reason}") from e


def cause_errno(error: BaseException) -> int | None:
    cause = error.__cause__
    return cause.errno if isinstance(cause, OSError) else None


def read_text(directory: str | None, name: str) -> str | None:
    """The stripped content of a control file, or None when it cannot be read."""
    if directory is None:
        return None
    try:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None


def read_int(directory: str | None, name: str) -> int | None:
    """An integer control file; None when missing, unreadable or "max"."""
    try:
        return int(read_text(directory, name) or "")
    except ValueError:
        return None


def read_keyed(directory: str | None, name: str) -> dict[str, int]:
    """A flat-keyed file such as memory.stat or cpu.stat ("key value" lines)."""
    values: dict[str, int] = {}
    for line in (read_text(directory, name) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            values[key] = int(value)
        except ValueError:
            continue
    return values


def parse_cpu_list(text: str) -> list[int]:
    """"0-3,5" -> [0, 1, 2, 3, 5]; the format of cpuset.cpus and cpuset.mems."""
    found: set[int] = set()
    for item in text.strip().split(","):
        if not item:
            continue
        first, sep, last = item.partition("-")
        start, end = int(first), int(last) if sep else int(first)
        if end < start:
            raise ValueError(f"bad cpu range {item!r}")
        found.update(range(start, end + 1))
    return sorted(found)


def write_cpuset(directory: str, name: str, value: str, field: str, parent_name: str,
                 missing: str = "") -> None:
    """Writes cpuset.cpus or cpuset.mems; when the kernel refuses, says which of the asked
    CPUs or nodes the parent cgroup does not offer, the usual cause."""
    try:
        write_value(directory, name, value, field, missing)
    except CgroupError as e:
        offered = read_text(os.path.dirname(directory), parent_name) or ""
        absent = _not_offered(value, offered)
        if not absent:
            raise
        raise CgroupError(f"{e} ({','.join(map(str, absent))} not in the parent's "
                          f"{offered or 'empty set'})") from e.__cause__


def _not_offered(asked: str, offered: str) -> list[int]:
    try:
        return sorted(set(parse_cpu_list(asked)) - set(parse_cpu_list(offered)))
    except ValueError:
        return []


def pids_max(limit: int) -> str:
    # OCI -1 means no limit; runc reads 0 the same way (the kernel would refuse every fork).
    return "max" if limit <= 0 else str(limit)


def rdma_lines(rdma: "dict[str, Any]") -> list[str]:
    """rdma.max takes one device per write: "mlx5_1 hca_handle=3 hca_object=max"."""
    lines = []
    for device, limits in rdma.items():
        handles = limits.get("hcaHandles")
        objects = limits.get("hcaObjects")
        lines.append(f"{device} hca_handle={'max' if handles is None else handles} "
                     f"hca_object={'max' if objects is None else objects}")
    return lines


def list_pids(directory: str) -> list[int]:
    """Every pid in the cgroup at `directory` and below it."""
    found: set[int] = set()
    for current, _, _ in os.walk(directory):
        for word in (read_text(current, "cgroup.procs") or "").split():
            found.add(int(word))
    return sorted(found)


def wait_for(done: "Callable[[], bool]", timeout: float) -> bool:
    """Polls `done` with a growing pause until it is true or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


def kill_until_empty(read_pids: "Callable[[], list[int]]", where: str, timeout: float) -> None:
    """SIGKILLs what `read_pids` lists, again and again (a dying parent may still fork),
    until the cgroup is empty; killed processes leave cgroup.procs once they have exited."""
    left: list[int] = []

    def all_gone() -> bool:
        left[:] = read_pids()
        sigkill_all(left, where)
        return not left

    if not wait_for(all_gone, timeout):
        raise CgroupError(f"processes {left} are still in {where} {timeout:g} s after SIGKILL")


def sigkill_all(pids: list[int], where: str) -> None:
    for pid in pids:
        try:
            os.kill(pid, SIGKILL)
        except ProcessLookupError:
            pass  # already gone
        except OSError as e:
            raise CgroupError(f"killing pid {pid} in {where}: {e.strerror}") from e


def remove_tree(directory: str) -> None:
    """Removes the cgroup and the ones below it, deepest first (rmdir refuses a cgroup with
    children). The control files inside do not count: cgroupfs lets rmdir take them along."""
    if not os.path.isdir(directory):
        return
    for current, _, _ in os.walk(directory, topdown=False):
        _remove_cgroup_dir(current)


def _remove_cgroup_dir(path: str) -> None:
    def removed() -> bool:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            return True
        except OSError as e:
            # EBUSY is brief: a killed task leaves cgroup.procs before it leaves the cgroup.
            if e.errno == errno.EBUSY:
                return False
            raise CgroupError(f"removing cgroup {path}: {e.strerror}") from e
        return True

    if not wait_for(removed, RMDIR_TIMEOUT):
        raise CgroupError(f"removing cgroup {path}: still busy after {RMDIR_TIMEOUT:g} s")
