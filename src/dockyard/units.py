"""Docker's human units (github.com/docker/go-units): durations, sizes, size parsing."""

from __future__ import annotations

import time

_DECIMAL = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: "Less than a second", "About a minute", "3 hours"..."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def since(timestamp: float, now: float | None = None) -> str:
    """ "3 minutes ago", as docker's CREATED columns show a Unix time."""
    now = time.time() if now is None else now
    return f"{human_duration(now - timestamp)} ago"


def _scaled(size: float, base: float, units: tuple[str, ...]) -> tuple[float, str]:
    index = 0
    while size >= base and index < len(units) - 1:
        size /= base
        index += 1
    return size, units[index]


def human_size(size: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision: decimal units, `precision` significant digits."""
    value, unit = _scaled(float(size), 1000.0, _DECIMAL)
    return f"{value:.{precision}g}{unit}"


def bytes_size(size: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits ("312KiB", "23.54GiB")."""
    value, unit = _scaled(float(size), 1024.0, _BINARY)
    return f"{value:.4g}{unit}"


def ram_in_bytes(text: str) -> int:
    """go-units RAMInBytes: "64m", "1.5g", "512k", "1024" (binary multiples)."""
    return _parse_size(text, 1024)


def from_human_size(text: str) -> int:
    """go-units FromHumanSize: decimal multiples ("10MB" = 10,000,000)."""
    return _parse_size(text, 1000)


def _parse_size(text: str, base: int) -> int:
    raw = text.strip()
    body = raw
    lowered = body.lower()
    if lowered.endswith("b"):
        body, lowered = body[:-1], lowered[:-1]
    if lowered.endswith("i"):
        body, lowered = body[:-1], lowered[:-1]
    multiplier = 1
    if lowered and lowered[-1] in "kmgtp":
        multiplier = base ** ("kmgtp".index(lowered[-1]) + 1)
        body = body[:-1]
    body = body.rstrip(" ")
    try:
        if not body or body.startswith(("-", "+")) or not body[0].isdigit():
            raise ValueError
        number = float(body)
    except ValueError:
        raise ValueError(f"invalid size: '{raw}'") from None
    return int(number * multiplier)
