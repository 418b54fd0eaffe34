"""Reading HTTP/1.1 requests off a socket, for tests that play a daemon by hand."""

from __future__ import annotations

import socket
from collections.abc import Iterator


def read_requests(conn: socket.socket) -> Iterator[tuple[str, str, dict[str, str], bytes]]:
    """(method, target, lower-cased headers, body) for each request on a keep-alive
    connection, until the client closes it. Content-Length bodies only."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = conn.recv(65536)
            if not data:
                return
            buffer += data
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(buffer) < length:
            buffer += conn.recv(65536)
        body, buffer = buffer[:length], buffer[length:]
        yield method, target, headers, body
