"""Running Dockyard's own runtime without a new interpreter.

Each container costs three runtime commands (create, start, delete) and an exec one more;
as separate processes each starts CPython and imports the runtime (~10 ms). When the
runtime is dockyard-runc, the shim forks and calls its entry point directly, with the
runtime's modules imported once, here: the child has the same command line, stdio,
session and signal dispositions as a spawned one.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from collections.abc import Sequence

_OWN_RUNTIME = os.path.join(os.path.dirname(sys.executable), "dockyard-runc")


def is_own_runtime(path: str) -> bool:
    try:
        return os.path.samefile(path, _OWN_RUNTIME)
    except OSError:
        return False


def preload() -> None:
    """Imports what the runtime's commands and its container side need (once)."""
    # seccomp_bpf (with hashlib) and the cgroup driver are the container side's too: a
    # forked child importing them pays ~2 ms more, on every container start.
    from ..runtime import cli, create, delete, exec, init, seccomp_bpf, start  # noqa: F401
    from ..runtime.cgroups import v1  # noqa: F401


# Commands the runtime can run as a call in one of our threads (runtime/cli.py's call):
# each would otherwise cost a fork of this process, whose copy-on-write faults alone take
# milliseconds.
CALLABLE = frozenset({"start", "delete", "kill"})


class NeedsProcess(Exception):
    """The command must run as a process of its own (spawn)."""


def call(argv: Sequence[str]) -> str | None:
    """The runtime's command run in the calling thread: its error message or None."""
    from ..runtime import cli

    try:
        return cli.call(list(argv[1:]))
    except cli.NeedsProcess:
        raise NeedsProcess(argv[1:]) from None


def spawn(argv: Sequence[str], stdin: int, stdout: int, stderr: int,
          reset_signals: Sequence[int]) -> int:
    """fork + the runtime's main(argv[1:]); returns the child's pid (exit status as usual)."""
    # The child must not run the collector over our objects: that would write to (and so
    # copy) every page of our heap. Frozen objects are not collected; the parent takes
    # them back at once.
    gc.freeze()
    pid = os.fork()
    if pid:
        gc.unfreeze()
        return pid
    gc.disable()
    code = 1
    try:
        os.setsid()
        for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
            if fd != target:
                os.dup2(fd, target)
        for signum in reset_signals:
            signal.signal(signum, signal.SIG_DFL)
        # Nothing of the shim's (sockets, other containers' pipes) may leak into containers.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        sys.stdout = os.fdopen(1, "w", closefd=False)
        sys.stderr = os.fdopen(2, "w", closefd=False)
        from ..runtime.cli import main

        code = main(list(argv[1:]))
        sys.stdout.flush()
        sys.stderr.flush()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - a forked child must never return into the shim
        code = 1
    os._exit(code)
