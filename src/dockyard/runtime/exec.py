"""`exec`: run another process inside a running container's namespaces and cgroup."""

from __future__ import annotations

import copy
import os

from .config import ConfigError, parse_process
from .container import CREATED, PAUSED, RUNNING, Container
from .create import write_pid_file
from .errors import RuntimeFailure
from .jsonio import JSONError, loads
from .spawn import SpawnPlan, start_intermediate
from .state import SECCOMP_CACHE

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    from .channel import Channel


class ExecOptions:
    def __init__(self, process_file: str | None = None, args: list[str] | None = None,
                 tty: bool = False, cwd: str | None = None, env: list[str] | None = None,
                 user: str | None = None, additional_gids: list[int] | None = None,
                 caps: list[str] | None = None, no_new_privs: bool = False,
                 console_socket: str | None = None, pid_file: str | None = None,
                 preserve_fds: int = 0, ignore_paused: bool = False) -> None:
        self.process_file = process_file
        self.args = args or []
        self.tty = tty
        self.cwd = cwd
        self.env = env or []
        self.user = user
        self.additional_gids = additional_gids or []
        self.caps = caps or []
        self.no_new_privs = no_new_privs
        self.console_socket = console_socket
        self.pid_file = pid_file
        self.preserve_fds = preserve_fds
        self.ignore_paused = ignore_paused
        self.console_fd: socket.socket | None = None
        self.meanwhile: Callable[[], None] | None = None


def build_process(container: Container, opts: ExecOptions) -> dict[str, Any]:
    """The process document (validated) for --process or for args and flags over the
    container's own process."""
    if opts.process_file:
        try:
            with open(opts.process_file, "rb") as f:
                base = loads(f.read())
        except (OSError, JSONError) as e:
            raise RuntimeFailure(f"reading --process {opts.process_file}: {e}") from None
    else:
        base = _process_from_flags(container, opts)
    try:
        parse_process(base, "process")
    except ConfigError as e:
        raise RuntimeFailure(str(e)) from None
    return base


def _process_from_flags(container: Container, opts: ExecOptions) -> dict[str, Any]:
    if not opts.args:
        raise RuntimeFailure("exec: no command given (args or --process)")
    base = copy.deepcopy(container.state.config.get("process") or {})
    base["args"] = opts.args
    base["terminal"] = opts.tty
    base["env"] = list(base.get("env") or []) + opts.env
    base.pop("consoleSize", None)
    if opts.cwd:
        base["cwd"] = opts.cwd
    if opts.user:
        uid, _, gid = opts.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise RuntimeFailure(f"--user: expected uid[:gid] as numbers, got {opts.user!r}")
        base["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if opts.additional_gids:
        base.setdefault("user", {})["additionalGids"] = opts.additional_gids
    if opts.caps:
        caps = base.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted", "ambient"):
            caps[kind] = list(dict.fromkeys([*(caps.get(kind) or []), *opts.caps]))
    if opts.no_new_privs:
        base["noNewPrivileges"] = True
    return base


def exec_in_container(container: Container, opts: ExecOptions) -> int:
    """Starts the process; returns its host pid once it has exec'd."""
    intermediate = start_intermediate(_load_exec_target)
    try:
        plan, payload = _exec_plan(container, opts)
    except BaseException:
        intermediate.abandon()
        raise
    spawned = intermediate.launch(plan, payload)
    # The process's end of the channel is close-on-exec: end-of-file means it exec'd.
    message = spawned.channel.receive()
    spawned.channel.close()
    if message is not None:
        raise RuntimeFailure(f"exec failed: unable to start container process: "
                             f"{message.get('message', message)}")
    if opts.pid_file:
        write_pid_file(opts.pid_file, spawned.pid)
    return spawned.pid


def _exec_plan(container: Container, opts: ExecOptions) -> tuple[SpawnPlan, dict[str, Any]]:
    status = container.status()
    if status == PAUSED and not opts.ignore_paused:
        raise RuntimeFailure("cannot exec in a paused container (use --ignore-paused to "
                             "override)")
    if status not in (CREATED, RUNNING, PAUSED):
        raise RuntimeFailure("cannot exec in a stopped container")
    process = build_process(container, opts)
    terminal = bool(process.get("terminal"))
    if terminal and opts.console_socket is None and opts.console_fd is None:
        raise RuntimeFailure("cannot allocate tty if runc will detach without setting "
                             "console socket")
    linux = container.state.config.get("linux") or {}
    plan = SpawnPlan(join=list(container.state.namespace_paths.items()),
                     cgroup=container.cgroup(), meanwhile=opts.meanwhile)
    payload = {
        "process": process, "seccomp": linux.get("seccomp"),
        "preserve_fds": opts.preserve_fds,
        "console_socket": opts.console_socket if terminal else None,
        "console_fd": opts.console_fd.fileno() if opts.console_fd is not None else None,
        "seccomp_cache": os.path.join(container.store.root, SECCOMP_CACHE),
    }
    return plan, payload


def _load_exec_target() -> Callable[[dict[str, Any]], Callable[[Channel], None]]:
    from .exec_target import make_exec_target

    return make_exec_target
