"""Docker's time formats: RFC 3339 with nanoseconds in UTC, and Go's zero time."""

from __future__ import annotations

import time

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def rfc3339_now() -> str:
    return rfc3339(time.time_ns())


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch (0.0 for the zero time or an unreadable value)."""
    from datetime import datetime

    if not text or text.startswith("0001-"):
        return 0.0
    cleaned = text.rstrip("Z")
    offset = "+00:00"
    if "+" in cleaned[10:]:
        cleaned, offset = cleaned[:cleaned.rindex("+")], cleaned[cleaned.rindex("+"):]
    if "." in cleaned:
        head, fraction = cleaned.split(".", 1)
        cleaned = f"{head}.{fraction[:6]}"
    try:
        return datetime.fromisoformat(cleaned + offset).timestamp()
    except ValueError:
        return 0.0
