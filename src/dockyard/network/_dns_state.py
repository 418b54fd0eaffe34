"""What the DNS thread keeps per container, per TCP client and per forwarded query."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from ._dns_wire import Query

TCP_LIMIT = 65535   # a message over TCP may be this long (its length is a 16-bit prefix)


@dataclass(eq=False)
class Container:
    """One attached container: its two listening sockets and its upstream servers."""

    id: str
    udp: socket.socket
    tcp: socket.socket
    upstream: list[tuple[str, int]]
    netns: tuple[int, int]         # the namespace's identity (see netns_identity)
    closed: bool = False           # set by detach in the caller's thread: answer no more
    registered: bool = False
    clients: set[TcpClient] = field(default_factory=set)
    forwards: set[Forward] = field(default_factory=set)


@dataclass(eq=False)
class UdpPeer:
    """Where to send the answer to a query that came over UDP."""

    container: Container
    address: tuple[str, int]
    limit: int

    @property
    def gone(self) -> bool:
        return self.container.closed


@dataclass(eq=False)
class TcpClient:
    """A TCP connection from a container, which may carry several queries."""

    container: Container
    sock: socket.socket
    inbuf: bytearray = field(default_factory=bytearray)
    outbuf: bytearray = field(default_factory=bytearray)
    events: int = 0
    deadline: float = 0.0
    done: bool = False
    limit: int = TCP_LIMIT

    @property
    def gone(self) -> bool:
        return self.done or self.container.closed


Peer = UdpPeer | TcpClient


@dataclass(eq=False)
class Forward:
    """A query on its way to the container's upstream servers, tried one after another."""

    container: Container
    query: Query
    data: bytes                    # the query as the client sent it (same id)
    peer: Peer
    tcp: bool
    next_index: int = 0
    sock: socket.socket | None = None
    connected: bool = False
    out: bytes = b""
    buf: bytearray = field(default_factory=bytearray)
    deadline: float = 0.0
    done: bool = False
