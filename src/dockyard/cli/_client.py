"""A small HTTP/1.1 client for the Engine API over AF_UNIX or TCP.

Built on the C `_socket` module rather than `http.client`: `http.client` imports `email`
and `ssl` (about 23 ms, three times the interpreter's own start-up), and the hijacked
attach/exec streams need the raw connection anyway. Only what the Engine API uses is
here: Content-Length, chunked and read-to-close bodies, keep-alive, and `Upgrade: tcp`.
"""

from __future__ import annotations

import _socket
import os

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from collections.abc import Iterator
    from typing import Any

CLIENT_MAX_API = "1.45"
DEFAULT_HOST = "unix:///run/dockyard.sock"
USER_AGENT = "Dockyard-Client/0.1.0 (linux)"

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


class DaemonError(Exception):
    """The daemon answered with an error status; str() is its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectError(Exception):
    pass


def quote(text: str, safe: str = "") -> str:
    extra = safe.encode()
    return "".join(chr(b) if b in _SAFE or b in extra else f"%{b:02X}"
                   for b in text.encode())


def urlencode(query: dict[str, Any] | list[tuple[str, Any]]) -> str:
    items = query.items() if isinstance(query, dict) else query
    parts = []
    for key, value in items:
        if value is None:
            continue
        if value is True:
            value = "1"
        elif value is False:
            value = "0"
        parts.append(f"{quote(key)}={quote(str(value))}")
    return "&".join(parts)


def resolve_host(flag: str | None = None) -> str:
    """-H wins, then DOCKYARD_HOST, then DOCKER_HOST, then the default socket."""
    return (flag or os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST")
            or DEFAULT_HOST)


def parse_host(host: str) -> tuple[int, Any]:
    """(address family, address) for unix:///path, tcp://host:port, or a bare /path."""
    if host.startswith("unix://"):
        return _socket.AF_UNIX, host[7:] or "/run/dockyard.sock"
    if host.startswith("/"):
        return _socket.AF_UNIX, host
    if host.startswith(("tcp://", "http://")):
        rest = host.split("://", 1)[1].rstrip("/")
        if rest.startswith("["):
            address, _, port = rest[1:].partition("]:")
        else:
            address, _, port = rest.rpartition(":") if ":" in rest else (rest, "", "")
        family = _socket.AF_INET6 if ":" in address else _socket.AF_INET
        return family, (address or "127.0.0.1", int(port or 2375))
    raise ConnectError(f"unable to parse docker host `{host}`")


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


class Response:
    """A response whose body is read on demand (whole, by chunk, or as a JSON stream)."""

    def __init__(self, conn: _Connection, status: int, reason: str,
                 headers: dict[str, str], has_body: bool) -> None:
        self.conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._remaining = int(length) if length is not None and not self._chunked else -1
        self._done = not has_body or self._remaining == 0
        self._chunk_left = 0

    def read_some(self) -> bytes:
        """The next piece of the body, b"" at its end."""
        if self._done:
            return b""
        conn = self.conn
        if self._chunked:
            if self._chunk_left == 0:
                line = conn.read_line()
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while conn.read_line() not in (b"", b"\r\n", b"\n"):
                        pass
                    self._finish()
                    return b""
                self._chunk_left = size
            data = conn.read_up_to(self._chunk_left)
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                conn.read_line()
            return data
        if self._remaining >= 0:
            data = conn.read_up_to(min(self._remaining, 1 << 16))
            self._remaining -= len(data)
            if self._remaining == 0:
                self._finish()
            return data
        data = conn.read_up_to(1 << 16, eof_ok=True)
        if not data:
            self._done = True
            conn.keep = False
            conn.close()
        return data

    def _finish(self) -> None:
        self._done = True
        self.conn.release()

    def read(self) -> bytes:
        pieces = []
        while True:
            piece = self.read_some()
            if not piece:
                return b"".join(pieces)
            pieces.append(piece)

    def json(self) -> Any:
        from ._jsonlite import loads

        return loads(self.read())

    def iter_json(self) -> Iterator[Any]:
        """Each JSON value of a stream of them (events, pull progress, stats)."""
        from ._jsonlite import raw_decode

        buffer = ""
        pending = b""
        while True:
            piece = self.read_some()
            if not piece:
                break
            pending += piece
            try:
                buffer += pending.decode()
                pending = b""
            except UnicodeDecodeError:
                continue
            while True:
                stripped = buffer.lstrip()
                if not stripped:
                    buffer = ""
                    break
                try:
                    value, end = raw_decode(stripped)
                except ValueError:
                    buffer = stripped
                    break
                yield value
                buffer = stripped[end:]

    def close(self) -> None:
        if not self._done:
            self.conn.keep = False
            self.conn.close()
            self._done = True


class _Connection:
    def __init__(self, client: Client, sock: Any) -> None:
        self.client = client
        self.sock = sock
        self.buffer = bytearray()
        self.keep = True

    def _fill(self) -> bool:
        data = self.sock.recv(1 << 16)
        if not data:
            return False
        self.buffer += data
        return True

    def read_line(self) -> bytes:
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end + 1])
                del self.buffer[:end + 1]
                return line
            if not self._fill():
                line = bytes(self.buffer)
                self.buffer.clear()
                return line

    def read_up_to(self, size: int, eof_ok: bool = False) -> bytes:
        if not self.buffer and not self._fill():
            if eof_ok:
                return b""
            raise ConnectError("the daemon closed the connection in the middle of a reply")
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def release(self) -> None:
        if self.keep and not self.buffer:
            self.client._idle.append(self)
        else:
            self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Pending:
    def __init__(self, client: Client, conn: _Connection, method: str) -> None:
        self.client = client
        self.conn = conn
        self.method = method

    def settle(self, timeout: float) -> None:
        """Returns when the reply has begun, or after timeout seconds."""
        sock = self.conn.sock
        if self.conn.buffer:
            return
        sock.settimeout(timeout)
        try:
            sock.recv(1, _socket.MSG_PEEK)
        except (TimeoutError, OSError):
            pass
        finally:
            sock.settimeout(None)

    def response(self) -> Response:
        response = self.client._receive(self.conn, self.method)
        if response.status >= 400:
            raise self.client.error_from(response)
        return response

    def close(self) -> None:
        self.conn.keep = False
        self.conn.close()


class Client:
    def __init__(self, host: str | None = None) -> None:
        self.host = resolve_host(host)
        self.family, self.address = parse_host(self.host)
        self.version: str | None = None
        self.server_version: str | None = None
        self._idle: list[_Connection] = []

    # -- connections ------------------------------------------------------------------------

    def _connect(self) -> _Connection:
        if self._idle:
            return self._idle.pop()
        sock = _socket.socket(self.family, _socket.SOCK_STREAM)
        try:
            sock.connect(self.address)
        except OSError as err:
            sock.close()
            raise ConnectError(self._connect_message(err)) from None
        return _Connection(self, sock)

    def _connect_message(self, err: OSError) -> str:
        if isinstance(err, FileNotFoundError | ConnectionRefusedError):
            return (f"Cannot connect to the Dockyard daemon at {self.host}. "
                    "Is the dockyard daemon running?")
        if isinstance(err, PermissionError):
            return ("permission denied while trying to connect to the Dockyard daemon "
                    f"socket at {self.host}")
        return f"Cannot connect to the Dockyard daemon at {self.host}: {err.strerror or err}"

    def _send(self, conn: _Connection, method: str, target: str, body: bytes | None,
              headers: dict[str, str] | None) -> None:
        host = "api.moby.localhost" if self.family == _socket.AF_UNIX else \
            f"{self.address[0]}:{self.address[1]}"
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {USER_AGENT}"]
        if body is not None or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body or b'')}")
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode()
        try:
            conn.sock.sendall(data + body if body else data)
        except OSError as err:
            conn.close()
            raise ConnectError(self._connect_message(err)) from None

    def _receive(self, conn: _Connection, method: str) -> Response:
        status_line = conn.read_line()
        if not status_line:
            conn.close()
            raise ConnectError("the daemon closed the connection without a reply")
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        while True:
            line = conn.read_line()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("connection", "").lower() == "close":
            conn.keep = False
        has_body = method != "HEAD" and status not in (101, 204, 304) and status >= 200
        response = Response(conn, status, reason, headers, has_body)
        if not has_body and status != 101:   # a hijacked connection is never reused
            conn.release()
        return response

    # -- API ---------------------------------------------------------------------------------

    def negotiate(self) -> str:
        """min(the daemon's API version, CLIENT_MAX_API), from /_ping, once."""
        if self.version is None:
            conn = self._connect()
            self._send(conn, "HEAD", "/_ping", None, None)
            response = self._receive(conn, "HEAD")
            response.read()
            if response.status in (404, 405):   # a server without HEAD: as docker, GET
                conn = self._connect()
                self._send(conn, "GET", "/_ping", None, None)
                response = self._receive(conn, "GET")
                response.read()
            server = response.headers.get("api-version", "")
            self.server_version = server or None
            if not server:
                self.version = "1.24"
            elif _version_tuple(server) < _version_tuple(CLIENT_MAX_API):
                self.version = server
            else:
                self.version = CLIENT_MAX_API
        return self.version

    def _target(self, path: str, query: dict[str, Any] | list[tuple[str, Any]] | None,
                versioned: bool) -> str:
        target = f"/v{self.negotiate()}{path}" if versioned else path
        if query:
            encoded = urlencode(query)
            if encoded:
                target += "?" + encoded
        return target

    def request(self, method: str, path: str, query: Any = None, body: Any = None,
                headers: dict[str, str] | None = None, versioned: bool = True,
                raw_body: bytes | None = None, check: bool = True) -> Response:
        target = self._target(path, query, versioned)
        headers = dict(headers or {})
        data = raw_body
        if body is not None:
            from ._jsonlite import dumps

            data = dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        reused = bool(self._idle)
        conn = self._connect()
        try:
            self._send(conn, method, target, data, headers)
            response = self._receive(conn, method)
        except ConnectError:
            if not reused:
                raise
            # The daemon closed the kept-alive connection meanwhile: once more, afresh.
            self._idle.clear()
            conn = self._connect()
            self._send(conn, method, target, data, headers)
            response = self._receive(conn, method)
        if check and response.status >= 400:
            raise self.error_from(response)
        return response

    def send(self, method: str, path: str, query: Any = None) -> Pending:
        """Sends a body-less request whose reply is read later (`wait` before `start`).

        Waits up to `settle` seconds for the reply to begin: dockerd answers the headers of
        /wait once the waiter is registered, which orders it before the start; a daemon
        that holds its headers back until the exit does not block the caller."""
        target = self._target(path, query, True)
        conn = self._connect()
        self._send(conn, method, target, None, None)
        return Pending(self, conn, method)

    def stream_upload(self, method: str, path: str, query: Any, source: Any,
                      headers: dict[str, str]) -> Response:
        """A request whose body (a file object) is sent chunked as it is read."""
        target = self._target(path, query, True)
        conn = self._connect()
        all_headers = {**headers, "Transfer-Encoding": "chunked"}
        host = "api.moby.localhost"
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", f"User-Agent: {USER_AGENT}"]
        lines += [f"{k}: {v}" for k, v in all_headers.items()]
        try:
            conn.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            while True:
                piece = source.read(1 << 16)
                if not piece:
                    break
                conn.sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
            conn.sock.sendall(b"0\r\n\r\n")
        except BrokenPipeError:
            pass   # the daemon refused early: its reply says why
        response = self._receive(conn, method)
        if response.status >= 400:
            raise self.error_from(response)
        return response

    def error_from(self, response: Response) -> DaemonError:
        raw = response.read()
        message = raw.decode(errors="replace").strip()
        if response.headers.get("content-type", "").startswith("application/json") or \
                message.startswith("{"):
            try:
                from ._jsonlite import loads

                message = loads(raw).get("message", message)
            except (ValueError, AttributeError):
                pass
        if not message:
            message = f"{response.status} {response.reason}".strip()
        return DaemonError(response.status, message)

    def get(self, path: str, query: Any = None) -> Any:
        return self.request("GET", path, query).json()

    def post(self, path: str, query: Any = None, body: Any = None) -> Any:
        response = self.request("POST", path, query, body)
        data = response.read()
        if not data.strip():
            return None
        from ._jsonlite import loads

        return loads(data)

    def delete(self, path: str, query: Any = None) -> None:
        self.request("DELETE", path, query).read()

    def hijack(self, path: str, query: Any = None, body: Any = None) -> tuple[Any, bytes]:
        """POST with `Upgrade: tcp`; returns the raw socket and bytes already read past the
        response's headers (the start of the stream)."""
        target = self._target(path, query, True)
        conn = self._connect()
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        data = b""
        if body is not None:
            from ._jsonlite import dumps

            data = dumps(body).encode()
            headers["Content-Type"] = "application/json"
        else:
            headers["Content-Type"] = "text/plain"
        self._send(conn, "POST", target, data, headers)
        response = self._receive(conn, "POST")
        if response.status >= 400:
            raise self.error_from(response)
        return conn.sock, bytes(conn.buffer)
