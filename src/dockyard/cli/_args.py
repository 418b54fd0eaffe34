"""A small table-driven parser with pflag's rules (docker's flag library).

`-abc` groups booleans, `-eK=V`/`-e K=V`/`-e=K=V`, `--name=x`/`--name x`, `--rm=false`,
`--` ends the options, and commands that take a command line of their own (`run`, `exec`)
stop at their first positional argument. Errors carry docker's wording; the caller prints
the usage and exits 125 (flag errors) or 1 (argument-count errors) as docker does.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any

    # A flag: (short, long, kind, default, help); kind: bool, str, int, list or float.
    Flag = tuple[str, str, str, Any, str]


class UsageError(Exception):
    """A command line docker would refuse; exit_code is 125 for flags, 1 for arguments."""

    def __init__(self, message: str, exit_code: int = 125, prefixed: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.prefixed = prefixed


class HelpRequested(Exception):
    pass


class Options(dict):  # type: ignore[type-arg]
    """Parsed flags by long name (dashes as underscores); `given` holds those set."""

    given: set[str]

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Spec:
    __slots__ = ("name", "usage", "summary", "flags", "min_args", "max_args",
                 "interspersed", "aliases")

    def __init__(self, name: str, usage: str, summary: str, flags: list[Flag],
                 min_args: int = 0, max_args: int | None = 0, interspersed: bool = True,
                 aliases: str = "") -> None:
        self.name = name
        self.usage = usage
        self.summary = summary
        self.flags = flags
        self.min_args = min_args
        self.max_args = max_args
        self.interspersed = interspersed
        self.aliases = aliases


def _dest(long: str) -> str:
    return long.replace("-", "_")


def _convert(flag: Flag, value: str, shown: str) -> Any:
    kind = flag[2]
    if kind in ("str", "list"):
        return value
    if kind == "int":
        try:
            return int(value, 10)
        except ValueError:
            raise UsageError(f'invalid argument "{value}" for "{shown}" flag: '
                             f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            raise UsageError(f'invalid argument "{value}" for "{shown}" flag: '
                             f'strconv.ParseFloat: parsing "{value}": invalid syntax') \
                from None
    if kind == "bool":
        lowered = value.lower()
        if lowered in ("1", "t", "true"):
            return True
        if lowered in ("0", "f", "false"):
            return False
        raise UsageError(f'invalid argument "{value}" for "{shown}" flag: '
                         f'strconv.ParseBool: parsing "{value}": invalid syntax')
    raise AssertionError(kind)


def _shown(flag: Flag) -> str:
    return f"-{flag[0]}, --{flag[1]}" if flag[0] else f"--{flag[1]}"


def parse(spec: Spec, argv: list[str], name: str | None = None) -> tuple[Options, list[str]]:
    """Parses argv for the command `dockyard <name>` (name defaults to spec.name)."""
    longs: dict[str, Flag] = {}
    shorts: dict[str, Flag] = {}
    options = Options()
    for flag in spec.flags:
        longs[flag[1]] = flag
        if flag[0]:
            shorts[flag[0]] = flag
        default = flag[3]
        options[_dest(flag[1])] = list(default) if isinstance(default, list) else default
    given: set[str] = set()
    positionals: list[str] = []

    def store(flag: Flag, value: Any) -> None:
        dest = _dest(flag[1])
        if flag[2] == "list":
            if dest not in given:
                options[dest] = []
            options[dest].append(value)
        else:
            options[dest] = value
        given.add(dest)

    index = 0
    while index < len(argv):
        arg = argv[index]
        index += 1
        if arg == "--":
            positionals += argv[index:]
            break
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            if name == "help":
                raise HelpRequested
            flag = longs.get(name)
            if flag is None:
                raise UsageError(f"unknown flag: --{name}")
            if flag[2] == "bool":
                store(flag, _convert(flag, value, _shown(flag)) if has_value else True)
                continue
            if not has_value:
                if index >= len(argv):
                    raise UsageError(f"flag needs an argument: --{name}")
                value = argv[index]
                index += 1
            store(flag, _convert(flag, value, _shown(flag)))
            continue
        if arg.startswith("-") and arg != "-":
            letters = arg[1:]
            position = 0
            while position < len(letters):
                letter = letters[position]
                position += 1
                if letter == "h" and "h" not in shorts:
                    raise HelpRequested
                flag = shorts.get(letter)
                if flag is None:
                    raise UsageError(f"unknown shorthand flag: '{letter}' in -{letters}")
                rest = letters[position:]
                if flag[2] == "bool":
                    if rest.startswith("="):
                        store(flag, _convert(flag, rest[1:], _shown(flag)))
                        break
                    store(flag, True)
                    continue
                if rest:
                    value = rest[1:] if rest.startswith("=") else rest
                elif index < len(argv):
                    value = argv[index]
                    index += 1
                else:
                    raise UsageError(f"flag needs an argument: '{letter}' in -{letters}")
                store(flag, _convert(flag, value, _shown(flag)))
                break
            continue
        positionals.append(arg)
        if not spec.interspersed:
            positionals += argv[index:]
            break
    options.given = given
    _check_count(spec, positionals, name or spec.name)
    return options, positionals


def _check_count(spec: Spec, args: list[str], command: str) -> None:
    low, high = spec.min_args, spec.max_args
    count = len(args)
    name = f"'dockyard {command}'"

    def plural(n: int) -> str:
        return "argument" if n == 1 else "arguments"

    if high == 0 and count > 0:
        raise UsageError(f"{name} accepts no arguments", 1, True)
    if low == high and count != low:
        raise UsageError(f"{name} requires {'exactly ' if low == 1 else ''}{low} "
                         f"{plural(low)}", 1, True)
    if count < low:
        if high is not None and high != low:
            raise UsageError(f"{name} requires at least {low} and at most {high} "
                             f"{plural(high)}", 1, True)
        raise UsageError(f"{name} requires at least {low} {plural(low)}", 1, True)
    if high is not None and count > high:
        if low and low != high:
            raise UsageError(f"{name} requires at least {low} and at most {high} "
                             f"{plural(high)}", 1, True)
        raise UsageError(f"{name} requires at most {high} {plural(high)}", 1, True)


def usage_error_text(spec: Spec, error: UsageError, name: str | None = None) -> str:
    """What docker prints for a refused command line (without the trailing newline)."""
    name = name or spec.name
    first = f"dockyard: {error}" if error.prefixed else str(error)
    verb = "See" if error.prefixed and error.exit_code == 1 and "requires at least" in str(
        error) else "Run"
    return (f"{first}\n\nUsage:  dockyard {name} {spec.usage}\n\n"
            f"{verb} 'dockyard {name} --help' for more information")


def help_text(spec: Spec, name: str | None = None) -> str:
    name = name or spec.name
    lines = [f"Usage:  dockyard {name} {spec.usage}\n", spec.summary, ""]
    if spec.aliases:
        lines += ["Aliases:", f"  {spec.aliases}", ""]
    if spec.flags:
        lines.append("Options:")
        entries = []
        for short, long, kind, default, text in spec.flags:
            name = f"-{short}, --{long}" if short else f"    --{long}"
            if kind != "bool":
                name += {"int": " int", "float": " decimal", "list": " list"}.get(kind,
                                                                                 " string")
            if kind in ("str", "int", "float") and default not in (None, "", 0):
                text += f' (default {default!r})'.replace("'", '"') if kind == "str" \
                    else f" (default {default})"
            entries.append((name, text))
        width = max(len(name) for name, _ in entries)
        lines += [f"  {name.ljust(width)}   {text}" for name, text in entries]
        lines.append("")
    return "\n".join(lines)
