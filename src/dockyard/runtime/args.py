"""runc's command line: global options, commands and their flags.

A small table-driven parser rather than argparse: it is on the start-up path of every
command, and it must read flags the way urfave/cli (runc's parser) does: long flags with
one dash or two (`-bundle`, `--bundle`), `--flag=value`, flags before positionals, and for
`exec` everything after the container id belonging to the process.
"""

from .errors import RuntimeFailure

DEFAULT_ROOT = "/run/dockyard-runc"

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BOOL, VALUE, LIST, INT, INT_LIST = "bool", "value", "list", "int", "int_list"

# name -> (kind, short alias, default)
_GLOBAL = {
    "version": (BOOL, "v", False), "help": (BOOL, "h", False), "root": (VALUE, "", DEFAULT_ROOT),
    "log": (VALUE, "", ""), "log-format": (VALUE, "", "text"), "debug": (BOOL, "", False),
    "systemd-cgroup": (BOOL, "", False), "rootless": (VALUE, "", "auto"),
    "criu": (VALUE, "", "criu"),
}
_CREATE = {
    "bundle": (VALUE, "b", "."), "console-socket": (VALUE, "", None),
    "pid-file": (VALUE, "", None), "no-pivot": (BOOL, "", False),
    "no-new-keyring": (BOOL, "", False), "preserve-fds": (INT, "", 0),
    "no-subreaper": (BOOL, "", False),
}
_COMMANDS: dict[str, tuple[dict[str, tuple[str, str, object]], list[str]]] = {
    # command -> (flags, positional names; a trailing "*" collects the rest)
    "spec": ({"bundle": (VALUE, "b", ""), "rootless": (BOOL, "", False)}, []),
    "create": (_CREATE, ["id"]),
    "run": ({**_CREATE, "detach": (BOOL, "d", False), "keep": (BOOL, "", False)}, ["id"]),
    "start": ({}, ["id"]),
    "pause": ({}, ["id"]),
    "resume": ({}, ["id"]),
    "state": ({}, ["id"]),
    "kill": ({"all": (BOOL, "a", False)}, ["id", "signal"]),
    "delete": ({"force": (BOOL, "f", False)}, ["id"]),
    "list": ({"format": (VALUE, "f", "table"), "quiet": (BOOL, "q", False)}, []),
    "ps": ({"format": (VALUE, "f", "table")}, ["id", "ps_args*"]),
    "features": ({}, []),
    "exec": ({
        "console-socket": (VALUE, "", None), "cwd": (VALUE, "", None),
        "env": (LIST, "e", None), "tty": (BOOL, "t", False), "user": (VALUE, "u", None),
        "additional-gids": (INT_LIST, "g", None), "process": (VALUE, "p", None),
        "detach": (BOOL, "d", False), "pid-file": (VALUE, "", None),
        "process-label": (VALUE, "", None), "apparmor": (VALUE, "", None),
        "no-new-privs": (BOOL, "", False), "cap": (LIST, "c", None),
        "preserve-fds": (INT, "", 0), "cgroup": (LIST, "", None),
        "ignore-paused": (BOOL, "", False), "no-subreaper": (BOOL, "", False),
    }, ["id", "args*"]),
}
_DEFAULT_POSITIONALS = {"id": "", "signal": "SIGTERM"}

USAGE = """usage: dockyard-runc [global options] COMMAND [options] [arguments]

Dockyard's OCI runtime, with runc's command line.

commands: create, start, run, state, kill, delete, exec, ps, pause, resume, list, spec,
          features
global options: --root DIR, --log FILE, --log-format text|json, --debug, --version
"""


class Options:
    """The parsed command line: one attribute per flag and positional (a plain class:
    `types` is one more import on every command's start-up path)."""

    def __init__(self) -> None:
        self.command: str | None = None

    def __getattr__(self, name: str) -> "Any":  # for the type checker: set by the parser
        raise AttributeError(name)


def parse_args(argv: list[str]) -> Options:
    options = Options()
    _set_defaults(options, _GLOBAL)
    index = _parse_flags(argv, 0, _GLOBAL, options, "")
    if index >= len(argv):
        return options
    command = argv[index]
    if command not in _COMMANDS:
        raise RuntimeFailure(f"No help topic for '{command}'")
    options.command = command
    flags, positionals = _COMMANDS[command]
    _set_defaults(options, flags)
    index = _parse_flags(argv, index + 1, flags, options, command)
    rest = argv[index:]
    for name in positionals:
        if name.endswith("*"):
            setattr(options, name[:-1], rest)
            rest = []
        else:
            setattr(options, name, rest.pop(0) if rest else _DEFAULT_POSITIONALS[name])
    return options


def _set_defaults(options: Options, flags: dict[str, tuple[str, str, object]]) -> None:
    for name, (kind, _, default) in flags.items():
        value = [] if kind in (LIST, INT_LIST) else default
        setattr(options, name.replace("-", "_"), value)


def _parse_flags(argv: list[str], index: int, flags: dict[str, tuple[str, str, object]],
                 options: Options, command: str) -> int:
    """Reads flags from argv[index:] up to the first positional; returns its index."""
    shorts = {short: name for name, (_, short, _) in flags.items() if short}
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return index + 1
        if not arg.startswith("-") or arg == "-":
            return index
        body, has_value, inline = arg.lstrip("-").partition("=")
        name = body if body in flags else shorts.get(body, "")
        if not name:
            where = f"{command} " if command else ""
            raise RuntimeFailure(f"flag provided but not defined: -{body} ({where}--help)")
        kind = flags[name][0]
        attribute = name.replace("-", "_")
        if kind == BOOL:
            value: object = inline.lower() not in ("false", "0") if has_value else True
            setattr(options, attribute, value)
            index += 1
            continue
        if has_value:
            text = inline
            index += 1
        elif index + 1 < len(argv):
            text = argv[index + 1]
            index += 2
        else:
            raise RuntimeFailure(f"flag needs an argument: -{body}")
        if kind in (INT, INT_LIST):
            if not text.lstrip("-").isdigit():
                raise RuntimeFailure(f'invalid value "{text}" for flag -{body}: '
                                     "parse error")
            value = int(text)
        else:
            value = text
        if kind in (LIST, INT_LIST):
            getattr(options, attribute).append(value)
        else:
            setattr(options, attribute, value)
    return index
