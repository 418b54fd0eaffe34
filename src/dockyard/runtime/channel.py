"""The message channel between the runtime and the processes it forks into a container.

Two pipes, one each way, carrying one JSON object per line. Every descriptor is
close-on-exec, so once the container's process has exec'd (and its forking parent has
exited) the runtime reads end-of-file. Pipes rather than a socketpair: the socket module
costs milliseconds to import on the start-up path.
"""

import posix

from .jsonio import dumps, loads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# The messages of create's hand-over with the container's init (create.py, init.py): init
# asks for the runtime-side hooks (HOOKS, answered by HOOKS_DONE), then says READY.
HOOKS = "hooks"
HOOKS_DONE = "hooks-done"
READY = "ready"


class ChannelClosed(RuntimeError):
    pass


class ChildFailed(RuntimeError):
    """The child reported an error (its message is the user-facing reason)."""


class Channel:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self._buffer = b""

    @staticmethod
    def pair() -> "tuple[Channel, Channel]":
        """(parent's end, child's end); after fork each side closes the other's."""
        down_read, down_write = posix.pipe()
        up_read, up_write = posix.pipe()
        return Channel(up_read, down_write), Channel(down_read, up_write)

    def send(self, kind: str, **fields: "Any") -> None:
        fields["type"] = kind
        data = (dumps(fields) + "\n").encode()
        while data:
            data = data[posix.write(self.write_fd, data):]

    def receive(self) -> "dict[str, Any] | None":
        """The next message, or None when every writer is gone (or has exec'd)."""
        while b"\n" not in self._buffer:
            chunk = posix.read(self.read_fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return loads(line)

    def expect(self, kind: str) -> "dict[str, Any]":
        message = self.receive()
        if message is None:
            raise ChannelClosed(f"expected {kind!r}, the other side went away")
        if message["type"] == "error":
            raise ChildFailed(message["message"])
        if message["type"] != kind:
            raise ChannelClosed(f"expected {kind!r}, got {message['type']!r}")
        return message

    def send_or_collect_error(self, kind: str, **fields: "Any") -> None:
        """Sends; if the child is already gone, raises the error it left for us instead."""
        try:
            self.send(kind, **fields)
        except BrokenPipeError:
            message = self.receive()
            if message is not None and message["type"] == "error":
                raise ChildFailed(message["message"]) from None
            raise ChannelClosed(f"sending {kind!r}: the other side went away") from None

    def close(self) -> None:
        """Closes both ends; a second call does nothing (the numbers may be reused)."""
        for fd in (self.read_fd, self.write_fd):
            if fd < 0:
                continue
            try:
                posix.close(fd)
            except OSError:
                pass
        self.read_fd = self.write_fd = -1
