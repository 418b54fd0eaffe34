"""Pseudo-terminals for `process.terminal`: made inside the container, the master end sent
to the caller over a unix socket with SCM_RIGHTS (runc's --console-socket protocol)."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import struct
import termios
import tty

_TIOCSPTLCK = 0x40045431
_TIOCGPTN = 0x80045430


def open_pty() -> tuple[int, str]:
    """A new pty from this mount namespace's /dev/ptmx: (master fd, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    number = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))[0]
    return master, f"/dev/pts/{number}"


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def become_terminal_owner(slave_path: str) -> None:
    """Makes the slave this session's controlling terminal and stdin/stdout/stderr."""
    slave = os.open(slave_path, os.O_RDWR)
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def send_master(sock: socket.socket, master: int, slave_path: str) -> None:
    socket.send_fds(sock, [slave_path.encode()], [master])


def receive_master(sock: socket.socket) -> int:
    _, fds, _, _ = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise OSError("no terminal received on the console socket")
    return fds[0]


def proxy_terminal(master: int) -> None:
    """Copies our stdin to the pty and the pty to our stdout until the container's side
    closes, with our terminal in raw mode and its size passed on."""
    stdin_is_tty = os.isatty(0)
    saved = termios.tcgetattr(0) if stdin_is_tty else None

    def copy_size(*_: object) -> None:
        if stdin_is_tty:
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)

    copy_size()
    previous = signal.signal(signal.SIGWINCH, copy_size)
    if stdin_is_tty:
        tty.setraw(0)
    readers = [master, 0]
    try:
        while True:
            try:
                ready, _, _ = select.select(readers, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return
                os.write(1, data)
            if 0 in ready:
                data = os.read(0, 65536)
                if data:
                    os.write(master, data)
                else:
                    readers.remove(0)
                    # Our stdin ended: tell the container, as a terminal would (^D).
                    os.write(master, b"\x04")
    finally:
        signal.signal(signal.SIGWINCH, previous)
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)

