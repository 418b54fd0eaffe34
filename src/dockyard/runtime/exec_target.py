"""The process `exec` starts: what it does inside the container's namespaces before
execve. Loaded by the forked intermediate (spawn.py), not on the runtime's start-up path."""

from __future__ import annotations

import os

from .process import (
    apply_rlimits,
    become_process_user,
    close_fds_on_exec,
    exec_process,
    find_executable,
    reset_signal_dispositions,
    with_home,
)
from .syscalls import LinuxSyscall

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Callable
    from typing import Any

    from .channel import Channel
    from .config import Process
    from .seccomp_bpf import SeccompProgram


def make_exec_target(payload: dict[str, Any]) -> Callable[[Channel], None]:
    """Rebuilds, in the intermediate process, what the runtime decided (exec.py)."""
    from .config import parse_process, parse_seccomp

    console = None
    if payload["console_fd"] is not None:
        import socket

        console = socket.socket(fileno=payload["console_fd"])
    elif payload["console_socket"]:
        from .init import connect_console

        console = connect_console(payload["console_socket"])
    seccomp = None
    if payload["seccomp"]:
        # Imported (and compiled or read from the cache) now: after setns(mnt) our
        # modules and the cache are out of sight.
        from . import seccomp_bpf

        seccomp = seccomp_bpf.prepare(payload["seccomp"], parse_seccomp(payload["seccomp"]),
                                      payload["seccomp_cache"])
    return ExecTarget(parse_process(payload["process"]), seccomp, console,
                      payload["preserve_fds"]).run


class ExecTarget:
    def __init__(self, process: Process, seccomp: SeccompProgram | None,
                 console: socket.socket | None, preserve_fds: int) -> None:
        self.process = process
        self.seccomp = seccomp
        self.console = console
        self.preserve_fds = preserve_fds
        if console is not None:
            from . import console as _console  # noqa: F401 - loaded before setns(mnt)

    def run(self, _channel: Channel) -> None:
        process = self.process
        if process.terminal:
            os.setsid()
        if self.console is not None:
            from .console import become_terminal_owner, open_pty, send_master

            master, slave = open_pty()
            send_master(self.console, master, slave)
            os.close(master)
            self.console.close()
            become_terminal_owner(slave)
        sys = LinuxSyscall()
        apply_rlimits(process.rlimits, sys)
        process.env = with_home(process.env, process.user.uid)
        executable = find_executable(process.args[0], process.env)
        become_process_user(process, self.seccomp, sys)
        close_fds_on_exec(2 + self.preserve_fds)
        reset_signal_dispositions()
        exec_process(executable, process.args, process.env)
