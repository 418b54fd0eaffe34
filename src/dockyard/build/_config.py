"""Image configs as Docker's classic builder records them: the container-config struct
with Go's field order and omitempty rules, the "#(nop)" history lines, and Go's
formatting of the values those lines quote."""

from __future__ import annotations

import re
from typing import Any

from ..gostrings import go_quote

# Go's container.Config fields in order; True: omitted when empty (omitempty).
_FIELDS: tuple[tuple[str, bool, Any], ...] = (
    ("Hostname", False, ""), ("Domainname", False, ""), ("User", False, ""),
    ("AttachStdin", False, False), ("AttachStdout", False, False),
    ("AttachStderr", False, False), ("ExposedPorts", True, None), ("Tty", False, False),
    ("OpenStdin", False, False), ("StdinOnce", False, False), ("Env", False, None),
    ("Cmd", False, None), ("Healthcheck", True, None), ("ArgsEscaped", True, False),
    ("Image", False, ""), ("Volumes", False, None), ("WorkingDir", False, ""),
    ("Entrypoint", False, None), ("NetworkDisabled", True, False),
    ("MacAddress", True, ""), ("OnBuild", False, None), ("Labels", False, None),
    ("StopSignal", True, ""), ("StopTimeout", True, None), ("Shell", True, None),
)


def full_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config in Go's field order, defaults filled in, empty omitempty fields out."""
    result: dict[str, Any] = {}
    for name, omit_empty, default in _FIELDS:
        value = config.get(name, default)
        if omit_empty and value in (None, "", False, {}, []):
            continue
        result[name] = value
    return result


def go_quote_list(items: list[str] | None) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(go_quote(item) for item in items or []) + "]"


def go_list(items: list[str]) -> str:
    """Go's %v of a []string: [a b]."""
    return "[" + " ".join(items) + "]"


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds; ValueError if malformed."""
    if text in ("0", ""):
        return 0
    position, total = 0, 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if not match:
            raise ValueError(f"time: invalid duration \"{text}\"")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return int(total)


def go_duration(ns: int) -> str:
    """Go's Duration.String()."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _trim(ns / size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = _trim(rest / 1_000_000_000)
    text = f"{seconds}s"
    if hours or minutes:
        text = f"{minutes}m" + text
    if hours:
        text = f"{hours}h" + text
    return sign + text


def _trim(value: float) -> str:
    text = f"{value:.9f}".rstrip("0").rstrip(".")
    return text or "0"


def go_rune(number: int) -> str:
    """Go's %q of an int: a quoted character."""
    if number == 39:
        return "'\\''"
    if number == 92:
        return "'\\\\'"
    if 32 <= number < 127:
        return f"'{chr(number)}'"
    return f"'\\x{number:02x}'" if number < 256 else f"'\\u{number:04x}'"


def healthcheck_comment(check: dict[str, Any]) -> str:
    """`HEALTHCHECK %q` of a *HealthConfig as moby's classic builder writes it."""
    return ("HEALTHCHECK &{" + go_quote_list(check.get("Test")) + " "
            + " ".join(go_quote(go_duration(int(check.get(key) or 0)))
                       for key in ("Interval", "Timeout", "StartPeriod"))
            + " " + go_rune(int(check.get("Retries") or 0)) + "}")
