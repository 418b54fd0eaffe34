"""What tests need from the host: waiting, pinging a daemon, running a command on a pty,
and removing what an engine left (processes, mounts, cgroups)."""

from __future__ import annotations

import ctypes
import os
import pty
import select
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def ping(sock: Path) -> bool:
    """Whether an Engine API daemon answers /_ping on this unix socket."""
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(2)
            client.connect(str(sock))
            client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = client.recv(4096)
    except OSError:
        return False
    return reply.split(b"\r\n", 1)[0].endswith(b" 200 OK")


def run_in_terminal(argv: list[str], env: dict[str, str] | None = None,
                    timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs argv with a pty as its stdin, stdout and stderr; returns what it printed there.

    Nobody types and the pty stays open: an EOF on stdin would end `run -it` before its
    output is through (script(1) < /dev/null does that, and loses output at random).
    """
    master, slave = pty.openpty()
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                               start_new_session=True)
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    chunk = os.read(master, 65536)
                except OSError:   # EIO: nobody has the pty open any more
                    chunk = b""
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break             # exited, and all it wrote has been read
        else:
            process.kill()
        status = process.wait(timeout=10)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(argv, status, output.decode(errors="replace"), "")


def processes_using(directory: Path) -> list[tuple[int, str]]:
    """Live processes whose command line names directory (daemons, conmon, shims)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if str(directory) in argv:
            found.append((int(proc.name), argv.strip()))
    return found


def mounts_under(directory: Path) -> list[str]:
    points = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [p for p in points if p == str(directory) or p.startswith(f"{directory}/")]


def unmount_all_under(directory: Path) -> None:
    # umount2(2), not umount(8): util-linux would create /run/mount on the host.
    libc = ctypes.CDLL(None, use_errno=True)
    mnt_detach = 2
    for point in sorted(mounts_under(directory), key=len, reverse=True):
        if libc.umount2(point.encode(), mnt_detach) != 0:
            raise OSError(ctypes.get_errno(), f"umount {point}")


def remove_cgroups(relative: str) -> None:
    """Removes the cgroup `relative`, and what is below it, in every hierarchy (v1 and v2),
    and its parent if that is then empty."""
    root = Path("/sys/fs/cgroup")
    for base in [root, *(p for p in root.iterdir() if p.is_dir())]:
        target = base / relative.strip("/")
        if target.is_dir():
            for directory, _, _ in os.walk(target, topdown=False):
                os.rmdir(directory)
            try:
                os.rmdir(target.parent)
            except OSError:
                pass  # the parent is shared (another test or the root): keep it
