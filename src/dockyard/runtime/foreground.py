"""Waiting for a container process in the foreground (`run`, `exec` without --detach):
signals sent to the runtime are passed on, and the process's exit status becomes ours."""

from __future__ import annotations

import os
import signal
import socket

from .console import proxy_terminal, receive_master
from .syscalls import PR_SET_CHILD_SUBREAPER, LinuxSyscall

_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
              signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT, signal.SIGALRM)


def become_subreaper() -> None:
    """So that the container process, once its intermediate parent exits, is our child."""
    LinuxSyscall().prctl(PR_SET_CHILD_SUBREAPER, 1)


def console_pair() -> tuple[socket.socket, socket.socket]:
    """(ours, the container's) ends for receiving the pty master ourselves."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def wait_in_foreground(pid: int, console: socket.socket | None) -> int:
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in _FORWARDED:
        if console is not None and signum == signal.SIGWINCH:
            continue  # the terminal proxy handles window size changes
        signal.signal(signum, forward)
    if console is not None:
        master = receive_master(console)
        console.close()
        proxy_terminal(master)
        os.close(master)
    while True:
        try:
            waited, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if waited == pid:
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else \
                128 + os.WTERMSIG(status)
