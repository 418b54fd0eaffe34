"""Running Dockyard's own runtime without a new interpreter.

Each container costs three runtime commands (create, start, delete) and an exec one more;
as separate processes each starts CPython and imports the runtime (~10 ms). When the
runtime is dockyard-runc, the shim forks and calls its entry point directly, with the
runtime's modules imported once, here: the child has the same command line, stdio,
session and signal dispositions as a spawned one.
"""

from __future__ import annotations

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
    from ..runtime import cli, create, delete, exec, init, start  # noqa: F401


def spawn(argv: Sequence[str], stdin: int, stdout: int, stderr: int,
          reset_signals: Sequence[int]) -> int:
    """fork + the runtime's main(argv[1:]); returns the child's pid (exit status as usual)."""
    pid = os.fork()
    if pid:
        return pid
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
