"""Forking a process into a container's namespaces and cgroup.

The runtime (P) forks an intermediate (C) first thing (`start_intermediate`): C imports
the modules the container's process needs while P reads and checks the config. P then
launches it with the plan and a JSON payload; C moves itself into the container's cgroup
(single-threaded, it takes the kernel's cheap path for that, see cgroups.join_self),
joins or creates the namespaces (for a new user namespace P writes C's id maps), and forks
the final process (G), inside the new PID namespace and the cgroup; C reports G's host pid
and exits. G runs the target and never returns.

This module and channel.py use `posix`, not `os`: `create` forks C before `os` is loaded
(~1 ms), so that the load happens in both processes at once instead of before the fork.

Messages travel over one Channel; the child's ends are close-on-exec, so P sees
end-of-file once G has exec'd.
"""

import posix

from .channel import Channel, ChildFailed
from .errors import RuntimeFailure
from .linux import CLONE_NEWUSER, NAMESPACE_FLAGS, NAMESPACE_PROC_NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from .cgroups import CgroupManager
    from .config import IdMapping

class SpawnPlan:
    def __init__(self, create: list[str] | None = None,
                 join: list[tuple[str, str]] | None = None,
                 uid_mappings: "list[IdMapping] | None" = None,
                 gid_mappings: "list[IdMapping] | None" = None,
                 cgroup: "CgroupManager | None" = None,
                 meanwhile: "Callable[[], None] | None" = None) -> None:
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


class Intermediate:
    """C, forked early: it imports the container side while P parses and prepares."""

    def __init__(self, pid: int, channel: Channel) -> None:
        self.pid = pid
        self.channel = channel
        self.prepared = False

    def prepare(self, payload: "dict[str, Any]") -> None:
        """Sends the payload ahead of the plan: C builds its target from it while we
        still prepare (the cgroup)."""
        try:
            self.channel.send_or_collect_error("payload", payload=payload)
        except BaseException:
            self.abandon()
            raise
        self.prepared = True

    def launch(self, plan: SpawnPlan, payload: "dict[str, Any] | None" = None) -> Spawned:
        try:
            if plan.meanwhile is not None:
                plan.meanwhile()
            # Sent only now: C may fork G and exit once it has this, and G must find us a
            # subreaper by then.
            self.channel.send_or_collect_error(
                "plan", create=plan.create, join=plan.join,
                payload=None if self.prepared else payload,
                cgroup=plan.cgroup.paths() if plan.cgroup is not None else None)
            if "user" in plan.create:
                self.channel.expect("userns")
                _write_id_maps(self.pid, plan)
                self.channel.send_or_collect_error("mapped")
            pid = self.channel.expect("pid")["pid"]
            _reap(self.pid)
            self.pid = 0
        except BaseException:
            self.abandon()
            raise
        return Spawned(pid, self.channel)

    def abandon(self) -> None:
        """C reads end-of-file and exits; nothing of it stays. Safe to call again."""
        self.channel.close()
        if self.pid:
            _reap(self.pid)
            self.pid = 0


def start_intermediate(
        load: "Callable[[], Callable[[dict[str, Any]], Callable[[Channel], None]]]",
) -> Intermediate:
    parent, child = Channel.pair()
    pid = posix.fork()
    if pid == 0:
        parent.close()
        _run_child(child, lambda: _intermediate(child, load))
    child.close()
    return Intermediate(pid, parent)


def start_init_intermediate() -> Intermediate:
    """C for `create`: it loads the container's init (init.py) while the runtime reads the
    config and makes the cgroup. The runtime's command line calls this before importing
    anything of `create`, so that C's imports overlap all of the runtime's."""
    return start_intermediate(_load_init)


def _load_init() -> "Callable[[dict[str, Any]], Callable[[Channel], None]]":
    from .init import make_init

    return make_init


def _intermediate(channel: Channel,
                  load: "Callable[[], Callable[[dict[str, Any]], Callable[[Channel], None]]]"
                  ) -> None:
    make_target = load()
    from .syscalls import LinuxSyscall

    sys = LinuxSyscall()
    plan = channel.receive()
    target = None
    if plan is not None and plan["type"] == "payload":
        target = make_target(plan["payload"])
        plan = channel.receive()
    if plan is None:
        posix._exit(0)  # abandoned: the runtime gave up before launching
    if plan["type"] != "plan":
        raise RuntimeFailure(f"unexpected message {plan['type']!r}")
    if target is None:
        target = make_target(plan["payload"])
    if plan["cgroup"] is not None:
        from .cgroups import join_self

        join_self(plan["cgroup"])
    create = plan["create"]
    # Open every namespace before entering any: after the mount namespace changes, the
    # paths may no longer resolve.
    joins = [(kind, posix.open(path, posix.O_RDONLY | posix.O_CLOEXEC))
             for kind, path in plan["join"] if not _same_namespace(kind, path)]
    joins.sort(key=lambda item: (item[0] != "user", item[0] == "mount"))
    for kind, fd in joins:
        if kind == "user":
            sys.setns(fd, NAMESPACE_FLAGS[kind])
            posix.close(fd)
    if "user" in create:
        sys.unshare(CLONE_NEWUSER)
        channel.send("userns")
        channel.expect("mapped")
    if "user" in create or any(kind == "user" for kind, _ in joins):
        posix.setresgid(0, 0, 0)
        posix.setresuid(0, 0, 0)
    for kind, fd in joins:
        if kind != "user":
            try:
                sys.setns(fd, NAMESPACE_FLAGS[kind])
            except OSError as e:
                raise RuntimeFailure(f"joining {kind} namespace: {e.strerror}") from None
            posix.close(fd)
    flags = 0
    for kind in create:
        if kind != "user":
            flags |= NAMESPACE_FLAGS[kind]
    if flags:
        sys.unshare(flags)
    # G shares our end of the channel: it may speak only once our "pid" is in it, or a
    # message of its own could come first (or, past PIPE_BUF, be split by ours). A pipe
    # between the two of us says when, without a round trip through the runtime.
    go_read, go_write = posix.pipe()
    pid = posix.fork()
    if pid == 0:
        posix.close(go_write)
        _run_child(channel, lambda: _after_go(go_read, channel, target))
    posix.close(go_read)
    channel.send("pid", pid=pid)
    posix.write(go_write, b"\0")


def _after_go(go_read: int, channel: Channel, target: "Callable[[Channel], None]") -> None:
    posix.read(go_read, 1)
    posix.close(go_read)
    target(channel)


def _run_child(channel: Channel, body: "Callable[[], None]") -> "NoReturn":
    """Runs body in a forked child; any failure goes to the parent as an error message."""
    code = 0
    try:
        body()
    except (RuntimeFailure, ChildFailed) as e:
        code = _report(channel, str(e))
    except OSError as e:
        detail = f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}"
        if posix.environ.get(b"DOCKYARD_RUNC_TRACE"):
            detail += "\n" + _traceback()
        code = _report(channel, detail)
    except BaseException as e:  # noqa: BLE001 - the child must never unwind into the caller
        code = _report(channel, f"{type(e).__name__}: {e}\n{_traceback()}")
    posix._exit(code)


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
        posix.write(2, f"{message}\n".encode())
    return 1


def _same_namespace(kind: str, path: str) -> bool:
    try:
        return posix.stat(path).st_ino == posix.stat(
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
        posix.waitpid(pid, 0)
    except ChildProcessError:
        pass
