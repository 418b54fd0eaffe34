"""Forking a process into a container's namespaces and cgroup.

The runtime (P) forks an intermediate (C). C imports the modules the container's process
needs (the runtime's own start-up path stays lean), moves itself into the container's
cgroup (single-threaded, it can take the kernel's cheap path for that, see
CgroupManager.add_self), then joins or creates the namespaces; for a new user namespace P
writes C's id maps. C forks the final process (G), so that G is inside the new PID
namespace and the cgroup; C reports G's host pid and exits. G runs the target and never
returns.

Messages travel over one Channel; the child's ends are close-on-exec, so P sees
end-of-file once G has exec'd.
"""

from __future__ import annotations

import os

from .channel import Channel, ChildFailed
from .errors import RuntimeFailure
from .linux import CLONE_NEWUSER, NAMESPACE_FLAGS, NAMESPACE_PROC_NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from .cgroups import CgroupManager
    from .config import IdMapping

class SpawnPlan:
    def __init__(self, create: list[str] | None = None,
                 join: list[tuple[str, str]] | None = None,
                 uid_mappings: list[IdMapping] | None = None,
                 gid_mappings: list[IdMapping] | None = None,
                 cgroup: CgroupManager | None = None,
                 meanwhile: Callable[[], None] | None = None) -> None:
        self.create = create or []  # namespace types to unshare
        self.join = join or []  # (type, path) to setns into
        self.uid_mappings = uid_mappings or []
        self.gid_mappings = gid_mappings or []
        self.cgroup = cgroup
        # Work for the runtime to do while C prepares (e.g. becoming a subreaper).
        self.meanwhile = meanwhile


class Spawned:
    def __init__(self, pid: int, channel: Channel) -> None:
        self.pid = pid  # G's pid in the runtime's PID namespace
        self.channel = channel


def spawn(plan: SpawnPlan, load_target: Callable[[], Callable[[Channel], None]]) -> Spawned:
    """`load_target` runs in C: it does the imports and preparation G needs, and returns
    what G runs."""
    parent, child = Channel.pair()
    intermediate = os.fork()
    if intermediate == 0:
        parent.close()
        _run_child(child, lambda: _intermediate(plan, child, load_target))
    child.close()
    try:
        if plan.meanwhile is not None:
            plan.meanwhile()
        # Only now may C go on to fork G and exit: G must find us a subreaper by then.
        parent.send_or_collect_error("go")
        if "user" in plan.create:
            parent.expect("userns")
            _write_id_maps(intermediate, plan)
            parent.send_or_collect_error("mapped")
        pid = parent.expect("pid")["pid"]
        _reap(intermediate)
        # G waits for this, so that nothing it says can overtake C's "pid".
        parent.send_or_collect_error("continue")
    except BaseException:
        _reap(intermediate)
        parent.close()
        raise
    return Spawned(pid, parent)


def _intermediate(plan: SpawnPlan, channel: Channel,
                  load_target: Callable[[], Callable[[Channel], None]]) -> None:
    target = load_target()
    from .syscalls import LinuxSyscall

    sys = LinuxSyscall()
    if plan.cgroup is not None:
        plan.cgroup.add_self()
    channel.expect("go")
    # Open every namespace before entering any: after the mount namespace changes, the
    # paths may no longer resolve.
    joins = [(kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)) for kind, path in plan.join
             if not _same_namespace(kind, path)]
    joins.sort(key=lambda item: (item[0] != "user", item[0] == "mount"))
    for kind, fd in joins:
        if kind == "user":
            sys.setns(fd, NAMESPACE_FLAGS[kind])
            os.close(fd)
    if "user" in plan.create:
        sys.unshare(CLONE_NEWUSER)
        channel.send("userns")
        channel.expect("mapped")
    if "user" in plan.create or any(kind == "user" for kind, _ in joins):
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    for kind, fd in joins:
        if kind != "user":
            try:
                sys.setns(fd, NAMESPACE_FLAGS[kind])
            except OSError as e:
                raise RuntimeFailure(f"joining {kind} namespace: {e.strerror}") from None
            os.close(fd)
    flags = 0
    for kind in plan.create:
        if kind != "user":
            flags |= NAMESPACE_FLAGS[kind]
    if flags:
        sys.unshare(flags)
    pid = os.fork()
    if pid == 0:
        _run_child(channel, lambda: _after_continue(channel, target))
    channel.send("pid", pid=pid)


def _after_continue(channel: Channel, target: Callable[[Channel], None]) -> None:
    channel.expect("continue")
    target(channel)


def _run_child(channel: Channel, body: Callable[[], None]) -> NoReturn:
    """Runs body in a forked child; any failure goes to the parent as an error message."""
    code = 0
    try:
        body()
    except (RuntimeFailure, ChildFailed) as e:
        code = _report(channel, str(e))
    except OSError as e:
        detail = f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}"
        if os.environ.get("DOCKYARD_RUNC_TRACE"):
            detail += "\n" + _traceback()
        code = _report(channel, detail)
    except BaseException as e:  # noqa: BLE001 - the child must never unwind into the caller
        code = _report(channel, f"{type(e).__name__}: {e}\n{_traceback()}")
    os._exit(code)


def _traceback() -> str:
    # Imported late: it is only for failures, and after pivot_root it may be out of sight.
    try:
        import traceback
    except ImportError:
        return ""
    return traceback.format_exc()


def _report(channel: Channel, message: str) -> int:
    try:
        channel.send("error", message=message)
    except OSError:
        os.write(2, f"{message}\n".encode())
    return 1


def _same_namespace(kind: str, path: str) -> bool:
    try:
        return os.stat(path).st_ino == os.stat(
            f"/proc/self/ns/{NAMESPACE_PROC_NAMES[kind]}").st_ino
    except OSError:
        return False


def _write_id_maps(pid: int, plan: SpawnPlan) -> None:
    for name, mappings in (("uid_map", plan.uid_mappings), ("gid_map", plan.gid_mappings)):
        if not mappings:
            continue
        text = "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)
        try:
            with open(f"/proc/{pid}/{name}", "w") as f:
                f.write(text)
        except OSError as e:
            raise RuntimeFailure(f"linux.{'uid' if name == 'uid_map' else 'gid'}Mappings: "
                                 f"writing {name}: {e.strerror}") from None


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
