"""runc's command line: global options, commands and their flags, as argparse parsers.

urfave/cli (runc's parser) accepts long flags with one dash (`-bundle`) as well as two;
`normalize_argv` rewrites the former before argparse sees them.
"""

from __future__ import annotations

import argparse

from .state import DEFAULT_ROOT


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dockyard-runc", description="Dockyard's OCI runtime, with runc's command line.")
    parser.add_argument("-v", "--version", action="store_true", help="print the version")
    parser.add_argument("--root", default=DEFAULT_ROOT, help="root directory for state")
    parser.add_argument("--log", default="", help="log file (default stderr)")
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--systemd-cgroup", action="store_true",
                        help="not supported: refused with an error")
    parser.add_argument("--rootless", default="auto")
    parser.add_argument("--criu", default="criu", help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    spec = commands.add_parser("spec", help="create a new specification file")
    spec.add_argument("-b", "--bundle", default="")
    spec.add_argument("--rootless", action="store_true")

    for name in ("create", "run"):
        cmd = commands.add_parser(name, help=f"{name} a container")
        cmd.add_argument("-b", "--bundle", default=".")
        cmd.add_argument("--console-socket")
        cmd.add_argument("--pid-file")
        cmd.add_argument("--no-pivot", action="store_true")
        cmd.add_argument("--no-new-keyring", action="store_true")
        cmd.add_argument("--preserve-fds", type=int, default=0)
        cmd.add_argument("--no-subreaper", action="store_true")
        if name == "run":
            cmd.add_argument("-d", "--detach", action="store_true")
            cmd.add_argument("--keep", action="store_true")
        cmd.add_argument("id", nargs="?", default="")

    for name in ("start", "pause", "resume", "state"):
        cmd = commands.add_parser(name, help=f"{name} a container")
        cmd.add_argument("id", nargs="?", default="")

    kill = commands.add_parser("kill", help="send a signal to a container's init")
    kill.add_argument("-a", "--all", action="store_true")
    kill.add_argument("id", nargs="?", default="")
    kill.add_argument("signal", nargs="?", default="SIGTERM")

    delete = commands.add_parser("delete", help="delete a container")
    delete.add_argument("-f", "--force", action="store_true")
    delete.add_argument("id", nargs="?", default="")

    listing = commands.add_parser("list", help="list containers")
    listing.add_argument("-f", "--format", default="table", choices=["table", "json"])
    listing.add_argument("-q", "--quiet", action="store_true")

    ps = commands.add_parser("ps", help="processes running in a container")
    ps.add_argument("-f", "--format", default="table", choices=["table", "json"])
    ps.add_argument("id", nargs="?", default="")
    ps.add_argument("ps_args", nargs=argparse.REMAINDER)

    ex = commands.add_parser("exec", help="run a process in a container")
    ex.add_argument("--console-socket")
    ex.add_argument("--cwd")
    ex.add_argument("-e", "--env", action="append", default=[])
    ex.add_argument("-t", "--tty", action="store_true")
    ex.add_argument("-u", "--user")
    ex.add_argument("-g", "--additional-gids", action="append", type=int, default=[])
    ex.add_argument("-p", "--process")
    ex.add_argument("-d", "--detach", action="store_true")
    ex.add_argument("--pid-file")
    ex.add_argument("--process-label")
    ex.add_argument("--apparmor")
    ex.add_argument("--no-new-privs", action="store_true")
    ex.add_argument("-c", "--cap", action="append", default=[])
    ex.add_argument("--preserve-fds", type=int, default=0)
    ex.add_argument("--cgroup", action="append", default=[])
    ex.add_argument("--ignore-paused", action="store_true")
    ex.add_argument("--no-subreaper", action="store_true")
    ex.add_argument("id", nargs="?", default="")
    ex.add_argument("args", nargs=argparse.REMAINDER)

    commands.add_parser("features", help="show the runtime's features")
    return parser


_VALUE_FLAGS = {"root", "log", "log-format", "rootless", "criu", "bundle", "console-socket",
                "pid-file", "preserve-fds", "cwd", "env", "user", "additional-gids",
                "process", "process-label", "apparmor", "cap", "cgroup", "format"}
_BOOL_FLAGS = {"debug", "systemd-cgroup", "no-pivot", "no-new-keyring", "no-subreaper",
               "detach", "keep", "all", "force", "quiet", "tty", "no-new-privs",
               "ignore-paused", "version", "help"}


_SHORT_VALUE_FLAGS = {"spec": "b", "create": "b", "run": "b", "exec": "eupgc", "list": "f",
                      "ps": "f"}


def normalize_argv(argv: list[str]) -> list[str]:
    """`-bundle x` -> `--bundle x`, up to the first argument after the command that is not
    an option (for exec, what follows the id is the process's own command line)."""
    result: list[str] = []
    command = ""
    expecting_value = False
    for index, arg in enumerate(argv):
        if expecting_value:
            expecting_value = False
            result.append(arg)
            continue
        if not arg.startswith("-") or arg == "-":
            result.append(arg)
            if command:
                return result + argv[index + 1:]
            command = arg
            continue
        if arg == "--":
            return result + argv[index:]
        if not arg.startswith("--") and len(arg) > 2:
            name = arg[1:].split("=", 1)[0]
            if name in _VALUE_FLAGS or name in _BOOL_FLAGS:
                arg = f"-{arg}"
        if arg.startswith("--"):
            expecting_value = arg[2:] in _VALUE_FLAGS
        else:
            expecting_value = len(arg) == 2 and arg[1] in _SHORT_VALUE_FLAGS.get(command, "")
        result.append(arg)
    return result
