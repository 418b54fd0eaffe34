"""Network namespaces kept as bind-mounted nsfs files (as `ip netns` and dockerd do), made
and entered from a short-lived thread: unshare(2) and setns(2) change only the calling
thread, so the daemon's other threads stay in the host's namespace."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 0x2

T = TypeVar("T")
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _in_thread(work: Callable[[], T]) -> T:
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["result"] = work()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e

    thread = threading.Thread(target=run, name="netns", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]  # type: ignore[return-value]


def create(path: Path, setup: Callable[[], T]) -> T:
    """A new network namespace bound at `path`; setup() runs inside it (a netlink socket
    it opens belongs to the new namespace). On failure nothing is left behind."""

    def work() -> T:
        host = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
                _check(_libc.mount(b"/proc/thread-self/ns/net", os.fsencode(path), None,
                                   MS_BIND, None), f"binding the network namespace at {path}")
                try:
                    return setup()
                except BaseException:
                    remove(path)
                    raise
            finally:
                _check(_libc.setns(host, CLONE_NEWNET), "setns(host)")
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        finally:
            os.close(host)

    return _in_thread(work)


def enter(path: Path | str, work: Callable[[], T]) -> T:
    """work() runs in a thread inside the namespace bound at `path`."""

    def run() -> T:
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.setns(target, CLONE_NEWNET), f"setns({path})")
        finally:
            os.close(target)
        return work()  # the thread ends here: it never returns to the host's namespace

    return _in_thread(run)


def remove(path: Path) -> None:
    """Unbinds and deletes a namespace file (the namespace goes when its last user does)."""
    _libc.umount2(os.fsencode(path), MNT_DETACH)
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def is_bound(path: Path) -> bool:
    """Whether a namespace is still bound at path (its file is an nsfs mount)."""
    try:
        with open("/proc/self/mountinfo") as f:
            target = f" {path} "
            return any(target in line and " nsfs " in line for line in f)
    except OSError:
        return False
