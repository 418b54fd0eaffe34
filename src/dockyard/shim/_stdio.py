"""A container process's stdio as the shim owns it: output read from pipes (or the pty
master) into the json-file log and to the attached clients, input written from the
attached clients to the stdin pipe (or the pty).

No task per process: the event loop calls back when a descriptor is readable. The process
never waits for the shim's clients: an attacher that falls LIMIT bytes behind is
disconnected (it cannot keep up; data it missed is in the log), and the log has its own
bound (jsonlog.py).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import termios
import time

from .jsonlog import SOFT_LIMIT, JsonFileLog, LineSplitter
from .protocol import STDERR, STDOUT, frame

READ_SIZE = 32768  # a read's log entries are queued before the backlog is checked
ATTACH_LIMIT = 1024 * 1024  # bytes queued for one attacher before it is dropped
STDIN_LIMIT = 256 * 1024  # bytes queued for the process's stdin before attachers wait
EOT = b"\x04"
NO_STDIN = -1
STDIN_TO_COME = -2  # the process is not started yet: input is queued for it


def set_nonblocking(fd: int) -> None:
    os.set_blocking(fd, False)


def set_window_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


class Attacher:
    """One client connection receiving the output (raw if terminal, else framed)."""

    __slots__ = ("writer", "stdout", "stderr")

    def __init__(self, writer: asyncio.StreamWriter, stdout: bool, stderr: bool) -> None:
        self.writer = writer
        self.stdout = stdout
        self.stderr = stderr

    def wants(self, stream: int) -> bool:
        return self.stdout if stream == STDOUT else self.stderr

    def send(self, data: bytes) -> bool:
        """False if the attacher is gone or too far behind (and now disconnected)."""
        transport = self.writer.transport
        if transport.is_closing():
            return False
        if transport.get_write_buffer_size() > ATTACH_LIMIT:
            transport.abort()
            return False
        self.writer.write(data)
        return True

    def close(self) -> None:
        if not self.writer.transport.is_closing():
            self.writer.close()


class Stdio:
    __slots__ = ("loop", "terminal", "log", "outputs", "splitters", "master", "stdin_fd",
                 "stdin_buffer", "stdin_closing", "stdin_waiters", "attachers", "eof_waiter",
                 "paused")

    def __init__(self, loop: asyncio.AbstractEventLoop, terminal: bool, stdin_open: bool,
                 log: JsonFileLog | None) -> None:
        self.loop = loop
        self.terminal = terminal
        self.log = log
        self.outputs: dict[int, int] = {}  # fd -> stream (STDOUT, STDERR)
        self.splitters: dict[int, LineSplitter] = {}
        self.master = -1  # the pty master if terminal
        # Where input goes: the stdin pipe or the master, once the process is started.
        self.stdin_fd = STDIN_TO_COME if stdin_open else NO_STDIN
        self.stdin_buffer = bytearray()
        self.stdin_closing = False
        self.stdin_waiters: list[asyncio.Future[None]] = []
        self.attachers: list[Attacher] = []
        self.eof_waiter: asyncio.Future[None] | None = None
        self.paused = False

    # Output.

    def add_output(self, fd: int, stream: int) -> None:
        set_nonblocking(fd)
        self.outputs[fd] = stream
        if self.log is not None:
            self.splitters[stream] = LineSplitter()
        self.loop.add_reader(fd, self._readable, fd)

    def set_terminal(self, master: int) -> None:
        self.master = master
        self.add_output(master, STDOUT)
        if self.stdin_fd == STDIN_TO_COME:
            self._stdin_ready(master)

    def _readable(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            # EIO: a pty whose other side every process has closed; the end, as EOF.
            data = b""
        if not data:
            self._output_ended(fd)
            return
        self._deliver(self.outputs[fd], data)
        if self.log is not None and self.log.pending_bytes > SOFT_LIMIT:
            self._stall()

    def _deliver(self, stream: int, data: bytes) -> None:
        if self.log is not None:
            now = time.time_ns()
            name = "stderr" if stream == STDERR and not self.terminal else "stdout"
            for piece in self.splitters[stream].feed(data):
                self.log.write(piece, name, now)
        if self.attachers:
            payload = data if self.terminal else frame(stream, data)
            for attacher in list(self.attachers):
                if attacher.wants(stream) and not attacher.send(payload):
                    self.attachers.remove(attacher)

    def _stall(self) -> None:
        """The log's writer is behind: hold this process's output back for a moment,
        unless the writer is stuck on a slow disk (then the log drops what does not fit)."""
        assert self.log is not None
        if self.paused or self.log.writer_stuck():
            return
        self.paused = True
        for fd in self.outputs:
            self.loop.remove_reader(fd)
        self.loop.call_later(0.002, self._resume)

    def _resume(self) -> None:
        if not self.paused:
            return
        self.paused = False
        for fd in self.outputs:
            self.loop.add_reader(fd, self._readable, fd)

    def _output_ended(self, fd: int) -> None:
        self.loop.remove_reader(fd)
        stream = self.outputs.pop(fd)
        if fd != self.master:
            os.close(fd)
        if self.log is not None:
            rest = self.splitters[stream].flush()
            if rest:
                name = "stderr" if stream == STDERR and not self.terminal else "stdout"
                self.log.write(rest, name, time.time_ns())
        if not self.outputs and self.eof_waiter is not None and not self.eof_waiter.done():
            self.eof_waiter.set_result(None)

    async def wait_output_end(self, timeout: float) -> None:
        """Until every output stream has ended; after `timeout` (a background process
        still holds the pipe), what is there is read and the streams are closed."""
        if self.outputs:
            self.eof_waiter = self.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self.eof_waiter), timeout)
            except TimeoutError:
                pass
            self.eof_waiter = None
        self._resume()
        for fd in list(self.outputs):
            for _ in range(64):  # what is in the pipe now, not what keeps coming
                try:
                    data = os.read(fd, READ_SIZE)
                except OSError:
                    break
                if not data:
                    break
                self._deliver(self.outputs[fd], data)
            self._output_ended(fd)

    # Input.

    def add_stdin_pipe(self, fd: int) -> None:
        set_nonblocking(fd)
        if self.stdin_fd == STDIN_TO_COME:
            self._stdin_ready(fd)
        else:
            os.close(fd)

    def _stdin_ready(self, fd: int) -> None:
        self.stdin_fd = fd
        if self.stdin_buffer:
            self.loop.add_writer(fd, self._stdin_writable)
        elif self.stdin_closing:
            self._finish_close_stdin()

    async def write_stdin(self, data: bytes) -> None:
        """Queues data for the process's stdin; waits while too much is queued (the
        process is not reading), which slows the attacher down, not the process."""
        if self.stdin_fd == NO_STDIN or self.stdin_closing:
            return
        if not self.stdin_buffer and self.stdin_fd >= 0:
            try:
                written = os.write(self.stdin_fd, data)
            except BlockingIOError:
                written = 0
            except OSError:
                self._drop_stdin()
                return
            data = data[written:]
            if not data:
                return
            self.loop.add_writer(self.stdin_fd, self._stdin_writable)
        self.stdin_buffer += data
        while len(self.stdin_buffer) > STDIN_LIMIT and self.stdin_fd != NO_STDIN:
            waiter = self.loop.create_future()
            self.stdin_waiters.append(waiter)
            await waiter

    def _stdin_writable(self) -> None:
        try:
            written = os.write(self.stdin_fd, self.stdin_buffer)
        except BlockingIOError:
            return
        except OSError:
            self._drop_stdin()
            return
        del self.stdin_buffer[:written]
        if len(self.stdin_buffer) <= STDIN_LIMIT:
            self._wake_stdin_waiters()
        if not self.stdin_buffer:
            self.loop.remove_writer(self.stdin_fd)
            if self.stdin_closing:
                self._finish_close_stdin()

    def _wake_stdin_waiters(self) -> None:
        waiters, self.stdin_waiters = self.stdin_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def close_stdin(self) -> None:
        """End of input: the stdin pipe is closed once what is queued is written; on a
        terminal (which has no end of file) an EOT (^D) is typed, as a user would."""
        if self.stdin_fd == NO_STDIN or self.stdin_closing:
            return
        self.stdin_closing = True
        if not self.stdin_buffer and self.stdin_fd >= 0:
            self._finish_close_stdin()

    def _finish_close_stdin(self) -> None:
        if self.terminal:
            try:
                os.write(self.stdin_fd, EOT)
            except OSError:
                pass
            self.stdin_fd = NO_STDIN
            return
        self._drop_stdin()

    def _drop_stdin(self) -> None:
        if self.stdin_fd >= 0:
            if self.stdin_buffer:
                self.loop.remove_writer(self.stdin_fd)
            if self.stdin_fd != self.master:
                os.close(self.stdin_fd)
        self.stdin_buffer.clear()
        self.stdin_fd = NO_STDIN
        self._wake_stdin_waiters()

    # The end.

    def close(self) -> None:
        """After the process exited and its output was delivered: attachers see the end
        of their stream, descriptors are closed."""
        for fd in list(self.outputs):
            self._output_ended(fd)
        self._drop_stdin()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        attachers, self.attachers = self.attachers, []
        for attacher in attachers:
            attacher.close()

    def resize(self, height: int, width: int) -> None:
        if self.master < 0:
            raise ValueError("the process has no terminal")
        set_window_size(self.master, height, width)
