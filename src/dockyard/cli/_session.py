"""Interactive I/O of run/start/attach/exec: the hijacked stream, stdin, the terminal.

Output: a TTY stream is copied as is; otherwise it is docker's multiplexed stream of frames
(1 byte stream, 3 zero bytes, 4 bytes big-endian size, payload) split to stdout and stderr.
Stdin is copied by a thread and half-closed (shutdown SHUT_WR) at its end, so that `-i`
without `-t` sees EOF. With `-t` the local terminal is put in raw mode, restored on exit,
and its size is sent on start and on SIGWINCH.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from collections.abc import Callable
    from typing import Any


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[written:]


class Demuxer:
    """Splits docker's multiplexed stream; feed() it bytes as they come."""

    def __init__(self, stdout_fd: int = 1, stderr_fd: int = 2) -> None:
        self.fds = {0: stdout_fd, 1: stdout_fd, 2: stderr_fd}
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        while len(buffer) >= 8:
            size = int.from_bytes(buffer[4:8], "big")
            if len(buffer) < 8 + size:
                break
            write_all(self.fds.get(buffer[0], self.fds[1]), bytes(buffer[8:8 + size]))
            del buffer[:8 + size]


def demux_bytes(data: bytes) -> list[tuple[int, bytes]]:
    """The frames of a complete multiplexed stream (for tests and small reads)."""
    frames = []
    position = 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position + 4:position + 8], "big")
        frames.append((data[position], data[position + 8:position + 8 + size]))
        position += 8 + size
    return frames


def copy_output(sock: Any, leftover: bytes, tty: bool) -> None:
    """Copies the attach/exec stream to stdout/stderr until the daemon closes it."""
    sys.stdout.flush()
    sink: Callable[[bytes], None]
    if tty:
        def sink(data: bytes) -> None:
            write_all(1, data)
    else:
        sink = Demuxer().feed
    if leftover:
        sink(leftover)
    while True:
        try:
            data = sock.recv(1 << 16)
        except InterruptedError:
            continue
        except OSError:
            break
        if not data:
            break
        sink(data)


def start_stdin_pump(sock: Any, on_done: Callable[[], None] | None = None) -> None:
    """Copies stdin to the socket in a thread; half-closes the socket at stdin's end."""
    import _socket
    import _thread

    def pump() -> None:
        try:
            while True:
                try:
                    data = os.read(0, 1 << 16)
                except InterruptedError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                sock.sendall(data)
        except OSError:
            pass
        try:
            sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass
        if on_done is not None:
            on_done()

    _thread.start_new_thread(pump, ())


class RawTerminal:
    """Puts stdin's terminal in raw mode for the session; restores it on exit."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and os.isatty(0)
        self.saved: Any = None

    def __enter__(self) -> RawTerminal:
        if self.enabled:
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            tty.setraw(0, termios.TCSANOW)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)


def terminal_size() -> tuple[int, int] | None:
    """(rows, columns) of the terminal on stdout (or stdin), None without one."""
    for fd in (1, 0):
        try:
            columns, rows = os.get_terminal_size(fd)
            return rows, columns
        except OSError:
            continue
    return None


def monitor_size(resize: Callable[[int, int], None]) -> None:
    """Sends the size now and on every SIGWINCH."""
    import _signal

    def send(*_: object) -> None:
        size = terminal_size()
        if size is not None:
            try:
                resize(*size)
            except Exception:   # the container may be gone: nothing to resize
                pass

    send()
    _signal.signal(_signal.SIGWINCH, send)


def proxy_signals(kill: Callable[[str], None]) -> None:
    """Forwards SIGINT, SIGTERM, ... to the container (docker's --sig-proxy)."""
    import _signal

    names = {_signal.SIGINT: "INT", _signal.SIGTERM: "TERM", _signal.SIGHUP: "HUP",
             _signal.SIGQUIT: "QUIT", _signal.SIGUSR1: "USR1", _signal.SIGUSR2: "USR2"}

    def forward(signum: int, _frame: object) -> None:
        try:
            kill(names[signum])
        except Exception:
            pass

    for signum in names:
        _signal.signal(signum, forward)
