"""`exec`: run another process inside a running container's namespaces and cgroup."""

from __future__ import annotations

import copy
import json
import os
import socket
from dataclasses import dataclass, field

from .channel import Channel
from .config import ConfigError, Process, parse_process, parse_spec
from .console import become_terminal_owner, open_pty, send_master
from .container import CREATED, PAUSED, RUNNING, Container
from .create import write_pid_file
from .errors import RuntimeFailure
from .process import (
    apply_rlimits,
    become_process_user,
    close_fds_on_exec,
    exec_process,
    find_executable,
    preload_seccomp,
)
from .spawn import SpawnPlan, spawn
from .syscalls import LinuxSyscall


@dataclass
class ExecOptions:
    process_file: str | None = None
    args: list[str] = field(default_factory=list)
    tty: bool = False
    cwd: str | None = None
    env: list[str] = field(default_factory=list)
    user: str | None = None
    additional_gids: list[int] = field(default_factory=list)
    caps: list[str] = field(default_factory=list)
    no_new_privs: bool = False
    console_socket: str | None = None
    console_fd: socket.socket | None = None
    pid_file: str | None = None
    preserve_fds: int = 0
    ignore_paused: bool = False


def build_process(container: Container, opts: ExecOptions) -> Process:
    if opts.process_file:
        try:
            with open(opts.process_file) as f:
                return parse_process(json.load(f), "process")
        except (OSError, json.JSONDecodeError) as e:
            raise RuntimeFailure(f"reading --process {opts.process_file}: {e}") from None
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
    try:
        return parse_process(base, "process")
    except ConfigError as e:
        raise RuntimeFailure(str(e)) from None


def exec_in_container(container: Container, opts: ExecOptions) -> int:
    """Starts the process; returns its host pid once it has exec'd."""
    status = container.status()
    if status == PAUSED and not opts.ignore_paused:
        raise RuntimeFailure("cannot exec in a paused container (use --ignore-paused to "
                             "override)")
    if status not in (CREATED, RUNNING, PAUSED):
        raise RuntimeFailure("cannot exec in a stopped container")
    process = build_process(container, opts)
    if process.terminal and opts.console_socket is None and opts.console_fd is None:
        raise RuntimeFailure("cannot allocate tty if runc will detach without setting "
                             "console socket")
    spec = parse_spec(container.state.config)
    console = opts.console_fd
    if console is None and opts.console_socket and process.terminal:
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        console.connect(opts.console_socket)
    plan = SpawnPlan(join=list(container.state.namespace_paths.items()),
                     cgroup=container.cgroup())
    seccomp = spec.linux.seccomp
    preload_seccomp(seccomp)

    def target(channel: Channel) -> None:
        sys = LinuxSyscall()
        if process.terminal:
            os.setsid()
        if console is not None:
            master, slave = open_pty()
            send_master(console, master, slave)
            os.close(master)
            console.close()
            become_terminal_owner(slave)
        apply_rlimits(process.rlimits)
        executable = find_executable(process.args[0], process.env)
        become_process_user(process, seccomp, sys)
        close_fds_on_exec(2 + opts.preserve_fds)
        exec_process(executable, process.args, process.env)

    spawned = spawn(plan, target)
    if console is not None and console is not opts.console_fd:
        console.close()
    # The process's end of the channel is close-on-exec: end-of-file means it exec'd.
    message = spawned.channel.receive()
    spawned.channel.close()
    if message is not None:
        raise RuntimeFailure(f"exec failed: unable to start container process: "
                             f"{message.get('message', message)}")
    if opts.pid_file:
        write_pid_file(opts.pid_file, spawned.pid)
    return spawned.pid
