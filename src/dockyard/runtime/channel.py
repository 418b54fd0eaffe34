"""The message channel between the runtime and the processes it forks into a container.

A SOCK_SEQPACKET socketpair keeps message boundaries, and the child's end is close-on-exec,
so a successful execve shows up on the parent's side as end-of-file.
"""

from __future__ import annotations

import json
import socket
from typing import Any

_MAX_MESSAGE = 65536


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @staticmethod
    def pair() -> tuple[Channel, Channel]:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        return Channel(parent), Channel(child)

    def send(self, kind: str, **fields: Any) -> None:
        self.sock.send(json.dumps({"type": kind, **fields}).encode())

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None when the other side is gone (or has exec'd)."""
        try:
            data = self.sock.recv(_MAX_MESSAGE)
        except ConnectionResetError:
            return None
        return json.loads(data) if data else None

    def expect(self, kind: str) -> dict[str, Any]:
        message = self.receive()
        if message is None:
            raise ChannelClosed(f"expected {kind!r}, the other side went away")
        if message["type"] == "error":
            raise ChildFailed(message["message"])
        if message["type"] != kind:
            raise ChannelClosed(f"expected {kind!r}, got {message['type']!r}")
        return message

    def close(self) -> None:
        self.sock.close()


class ChannelClosed(RuntimeError):
    pass


class ChildFailed(RuntimeError):
    """The child reported an error (its message is the user-facing reason)."""
