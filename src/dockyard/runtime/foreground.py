"""Waiting for a container process in the foreground (`run`, `exec` without --detach):
signals sent to the runtime are passed on, and the process's exit status becomes ours."""

from __future__ import annotations

import os

from .linux import PR_SET_CHILD_SUBREAPER

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket


def become_subreaper() -> None:
    """So that the container process, once its intermediate parent exits, is our child."""
    from .syscalls import LinuxSyscall

    LinuxSyscall().prctl(PR_SET_CHILD_SUBREAPER, 1)


def console_pair() -> tuple[socket.socket, socket.socket]:
    """(ours, the container's) ends for receiving the pty master ourselves."""
    import socket

    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def wait_in_foreground(pid: int, console: socket.socket | None) -> int:
    # _signal, not signal: the latter's enums cost milliseconds on the start-up path.
    import _signal

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    forwarded = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGCONT",
                 "SIGALRM", *(() if console is not None else ("SIGWINCH",)))
    for name in forwarded:
        _signal.signal(getattr(_signal, name), forward)
    if console is not None:
        from .console import proxy_terminal, receive_master

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
