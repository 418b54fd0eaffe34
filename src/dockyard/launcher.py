"""Writes a fast launcher for a console script (`dockyard-runc`, `dockyard`) over the one
pip generates.

pip's console-script wrapper starts the interpreter with `site` (every .pth file of the
environment) and imports `re`: about 8 ms before the program's first line, on commands
whose whole job takes 10 to 20. The launcher runs the same entry point with `-IS`
(isolated, no site) and the package's directory put on sys.path directly. Both entry points
use only the standard library, so nothing from site-packages is missed. When the entry
point returns, the launcher flushes stdout and stderr and ends the process at once.

--no-gc is for short-lived programs (dockyard-runc): the cycle collector is turned off
before the first import. Such a program's garbage dies with it; a collection costs time
on the way (~0.5 ms of imports) and, in a forked child, copies every page whose objects
it visits.

usage: python -m dockyard.launcher [--entry MODULE:FUNCTION] [--no-gc] BIN_PATH
       (the entry point defaults to dockyard-runc's, dockyard.runtime.cli:main)
"""

from __future__ import annotations

import os
import stat
import sys

DEFAULT_ENTRY = "dockyard.runtime.cli:main"

_TEMPLATE = """#!{python} -IS
# Written by dockyard.launcher: {entry} without site or re at start-up.
{gc}import sys
sys.path.insert(0, {package_parent!r})
from {module} import {function}
code = {function}()
try:
    sys.stdout.flush()
    sys.stderr.flush()
except BaseException:
    sys.exit(code)
# Nothing is left to run at exit (no threads, no atexit work): skip the interpreter's
# teardown, ~1.5 ms of every command.
import posix
posix._exit(code if isinstance(code, int) else 0 if code is None else 1)
"""


_NO_GC = "import gc\ngc.disable()\n"


def write_launcher(path: str, entry: str = DEFAULT_ENTRY, gc: bool = True) -> None:
    import dockyard

    module, _, function = entry.partition(":")
    if not module or not function.isidentifier():
        raise ValueError(f"entry point must be MODULE:FUNCTION, not {entry!r}")
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(dockyard.__file__)))
    text = _TEMPLATE.format(python=sys.executable, package_parent=package_parent,
                            entry=entry, module=module, function=function,
                            gc="" if gc else _NO_GC)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    os.rename(tmp, path)


def main(argv: list[str]) -> int:
    entry, gc, paths = DEFAULT_ENTRY, True, []
    args = iter(argv)
    for arg in args:
        if arg == "--entry":
            entry = next(args, "")
        elif arg.startswith("--entry="):
            entry = arg.split("=", 1)[1]
        elif arg == "--no-gc":
            gc = False
        else:
            paths.append(arg)
    if len(paths) != 1:
        sys.stderr.write(__doc__ or "")
        return 2
    try:
        write_launcher(paths[0], entry, gc)
    except ValueError as err:
        sys.stderr.write(f"{err}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
