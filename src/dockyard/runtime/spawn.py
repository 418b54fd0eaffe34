"""Forking a process into a container's namespaces and cgroup.

The runtime (P) forks an intermediate (C). P moves C into the cgroup and, for a new user
namespace, writes C's id maps. C joins or creates the namespaces, then forks the final
process (G) so that G is inside the new PID namespace, reports G's host pid and exits.
G runs `target` and never returns. Messages travel over one Channel; the child's end is
close-on-exec, so P sees end-of-file once G has exec'd.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from .cgroups import CgroupManager
from .channel import Channel, ChildFailed
from .config import IdMapping
from .errors import RuntimeFailure
from .syscalls import CLONE_NEWUSER, NAMESPACE_FLAGS, NAMESPACE_PROC_NAMES, LinuxSyscall


@dataclass
class SpawnPlan:
    create: list[str] = field(default_factory=list)  # namespace types to unshare
    join: list[tuple[str, str]] = field(default_factory=list)  # (type, path) to setns
    uid_mappings: list[IdMapping] = field(default_factory=list)
    gid_mappings: list[IdMapping] = field(default_factory=list)
    cgroup: CgroupManager | None = None


@dataclass
class Spawned:
    pid: int  # G's pid in the runtime's PID namespace
    channel: Channel


def spawn(plan: SpawnPlan, target: Callable[[Channel], None]) -> Spawned:
    parent, child = Channel.pair()
    intermediate = os.fork()
    if intermediate == 0:
        parent.close()
        _run_child(child, lambda: _intermediate(plan, child, target))
    child.close()
    try:
        if plan.cgroup is not None:
            plan.cgroup.add_process(intermediate)
        parent.send("go")
        if "user" in plan.create:
            parent.expect("userns")
            _write_id_maps(intermediate, plan)
            parent.send("mapped")
        pid = parent.expect("pid")["pid"]
        # G waits for this so that nothing it says can overtake C's "pid" on the channel.
        parent.send("continue")
    except BaseException:
        _reap(intermediate)
        parent.close()
        raise
    _reap(intermediate)
    return Spawned(pid, parent)


def _intermediate(plan: SpawnPlan, channel: Channel, target: Callable[[Channel], None]) -> None:
    sys = LinuxSyscall()
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
    except RuntimeFailure as e:
        code = _report(channel, str(e))
    except ChildFailed as e:
        code = _report(channel, str(e))
    except OSError as e:
        detail = f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}"
        if os.environ.get("DOCKYARD_RUNC_TRACE"):
            detail += "\n" + traceback.format_exc()
        code = _report(channel, detail)
    except BaseException as e:  # noqa: BLE001 - the child must never unwind into the caller
        code = _report(channel, f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    os._exit(code)


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
