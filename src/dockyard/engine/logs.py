"""Reading a container's json-file log (written by the shim) for `docker logs`."""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from .timefmt import parse_rfc3339

Entry = tuple[str, str, bytes]  # (stream, time, data)


def _files(log_path: Path) -> list[Path]:
    """Oldest first: <log>.N ... <log>.1, <log>."""
    rotated = sorted((p for p in log_path.parent.glob(log_path.name + ".*")
                      if p.suffix[1:].isdigit()), key=lambda p: -int(p.suffix[1:]))
    return rotated + ([log_path] if log_path.exists() else [])


def _parse(line: bytes) -> Entry | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc.get("stream", "stdout"), doc.get("time", ""), doc.get("log", "").encode(
        "utf-8", "surrogateescape")


def read_logs(log_path: Path, tail: int | None = None, since: float = 0.0,
              until: float = 0.0) -> list[Entry]:
    entries: deque[Entry] | list[Entry] = deque(maxlen=tail) if tail is not None else []
    for path in _files(log_path):
        with open(path, "rb") as f:
            for line in f:
                entry = _parse(line)
                if entry is None or not _in_window(entry, since, until):
                    continue
                entries.append(entry)
    return list(entries) if tail != 0 else []


def follow_logs(log_path: Path, running: Callable[[], bool], since: float = 0.0,
                until: float = 0.0, poll: float = 0.05) -> Iterator[Entry]:
    """New entries as the shim appends them, until the container stops (or `until`).
    Rotation is noticed by the file's inode changing."""
    position = log_path.stat().st_size if log_path.exists() else 0
    inode = log_path.stat().st_ino if log_path.exists() else 0
    buffer = b""
    while True:
        try:
            st = os.stat(log_path)
        except FileNotFoundError:
            st = None
        if st is not None and st.st_ino != inode:
            inode, position = st.st_ino, 0
        if st is not None and st.st_size > position:
            with open(log_path, "rb") as f:
                f.seek(position)
                chunk = f.read()
            position += len(chunk)
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                entry = _parse(line)
                if entry is not None and _in_window(entry, since, until):
                    yield entry
        elif not running() or (until and time.time() > until):
            return
        else:
            time.sleep(poll)


def _in_window(entry: Entry, since: float, until: float) -> bool:
    if not since and not until:
        return True
    stamp = parse_rfc3339(entry[1])
    return (not since or stamp >= since) and (not until or stamp <= until)
