"""The few kernel facts the shim reads or sets: /proc, prctl, cgroup OOM counters, and
atomic small-file writes."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

PR_SET_CHILD_SUBREAPER = 36


def log(message: str) -> None:
    """A line in the shim's own log (its stderr)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        sys.stderr.write(f"{stamp} dockyard-shim[{os.getpid()}]: {message}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def set_child_subreaper() -> None:
    """Orphaned descendants (a container's init, once the runtime that started it exits)
    become our children, so that we can wait for them and learn their exit status."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(errno)}")


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time) from /proc/<pid>/stat, or None if there is no such
    process. The start time tells a process from a later one that reuses its pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may hold spaces and parentheses: the fields follow the last ')'.
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])


def memory_oom_file(pid: int) -> str | None:
    """The file whose "oom_kill N" line counts OOM kills in the process's memory cgroup:
    memory.oom_control (cgroup v1) or memory.events (v2)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    unified = None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            candidate = os.path.join("/sys/fs/cgroup/memory", path.lstrip("/"),
                                     "memory.oom_control")
            return candidate if os.path.exists(candidate) else None
        if controllers == "":
            unified = path
    if unified is not None:
        for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
            candidate = os.path.join(base, unified.lstrip("/"), "memory.events")
            if os.path.exists(candidate):
                return candidate
    return None


def oom_kill_count(path: str | None) -> int:
    if not path:
        return 0
    try:
        with open(path) as f:
            for line in f:
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0


def write_json_atomic(path: str, doc: dict[str, Any]) -> None:
    """Write to a temporary file, rename: a reader sees the old file or the new.

    Not fsync'd: what the shim writes (exit records) matters to a daemon or shim that
    restarts, not after a reboot (no container survives one; the daemon then reports
    exit status 255, as dockerd does), and a fsync on the exit path of every container
    waits for all the dirty data of the file system on a busy disk."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(doc, separators=(",", ":")).encode() + b"\n")
    finally:
        os.close(fd)
    os.rename(tmp, path)


def anonymous_file(directory: str) -> int:
    """A read-write file with no name (for a runtime command's stderr)."""
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        path = os.path.join(directory, f".tmp-{os.urandom(6).hex()}")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        os.unlink(path)
        return fd


def read_all(fd: int, limit: int = 65536) -> bytes:
    """What a file holds from its start (up to limit bytes)."""
    try:
        return os.pread(fd, limit, 0)
    except OSError:
        return b""
