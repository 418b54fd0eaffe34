"""HTTP for the registry client: keep-alive connections over stdlib http.client, a few
per host, shared by the threads of one pull or push.

As dockerd, the daemon's environment chooses a proxy: HTTPS_PROXY / HTTP_PROXY (any case)
unless NO_PROXY names the host; HTTPS goes through a CONNECT tunnel, HTTP in absolute form.

A connection is handed out for one request and back into the pool once its response has
been read to the end; a kept-alive connection the server closed meanwhile is retried once
on a fresh connection (requests with a body that is a stream are not retried).
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import getproxies_environment, proxy_bypass_environment

_MAX_IDLE_PER_HOST = 8
_MAX_REDIRECTS = 5
_TIMEOUT = 60.0
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          http.client.BadStatusLine)


@dataclass(frozen=True)
class Proxy:
    netloc: str
    headers: dict[str, str]


class TransportError(Exception):
    """The registry could not be reached (connection refused, TLS failure, timeout)."""


@dataclass
class Response:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    url: str
    _raw: http.client.HTTPResponse

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size) if size >= 0 else self._raw.read()

    def readinto(self, buffer: bytearray | memoryview) -> int:
        return self._raw.readinto(buffer)


Body = bytes | IO[bytes] | None


class ConnectionPool:
    """Idle keep-alive connections by (scheme, host:port)."""

    def __init__(self, timeout: float = _TIMEOUT,
                 proxies: Mapping[str, str] | None = None) -> None:
        self._timeout = timeout
        self._proxies = dict(getproxies_environment() if proxies is None else proxies)
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        # Insecure registries over HTTPS: any certificate is accepted (Docker's rule).
        self._unverified = ssl.create_default_context()
        self._unverified.check_hostname = False
        self._unverified.verify_mode = ssl.CERT_NONE
        self._verified = ssl.create_default_context()

    def _take(self, scheme: str, netloc: str, verify: bool) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get((scheme, netloc))
            if idle:
                return idle.pop()
        proxy = self.proxy_for(scheme, netloc)
        if scheme == "https":
            context = self._verified if verify else self._unverified
            if proxy is None:
                return http.client.HTTPSConnection(netloc, timeout=self._timeout,
                                                   context=context)
            conn = http.client.HTTPSConnection(proxy.netloc, timeout=self._timeout,
                                               context=context)
            conn.set_tunnel(netloc, headers=proxy.headers)
            return conn
        return http.client.HTTPConnection(proxy.netloc if proxy else netloc,
                                          timeout=self._timeout)

    def proxy_for(self, scheme: str, netloc: str) -> Proxy | None:
        """The proxy a request to scheme://netloc goes through, if any."""
        url = self._proxies.get(scheme)
        if not url or proxy_bypass_environment(netloc, self._proxies):
            return None
        if "://" not in url:
            url = f"http://{url}"
        parts = urlsplit(url)
        headers: dict[str, str] = {}
        if parts.username:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Proxy-Authorization"] = \
                "Basic " + base64.b64encode(secret.encode()).decode()
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        return Proxy(f"{host}:{parts.port or 80}", headers)

    def _give_back(self, scheme: str, netloc: str, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault((scheme, netloc), [])
            if len(idle) < _MAX_IDLE_PER_HOST:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            for conns in self._idle.values():
                for conn in conns:
                    conn.close()
            self._idle.clear()

    @contextmanager
    def request(self, method: str, url: str, headers: Mapping[str, str] | None = None,
                body: Body = None, *, verify: bool = True,
                follow_redirects: bool = True) -> Iterator[Response]:
        """Send a request; the response is valid inside the `with` block. Redirects (blob
        downloads may be sent to storage elsewhere) are followed for GET and HEAD, without
        the Authorization header when they leave the host."""
        sent_headers = dict(headers or {})
        for _ in range(_MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            scheme, netloc = parts.scheme, parts.netloc
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
            conn, raw = self._send(scheme, netloc, method, target, sent_headers, body, verify)
            response = Response(raw.status, raw.reason, raw.msg, url, raw)
            location = raw.getheader("Location")
            if (follow_redirects and method in ("GET", "HEAD") and location
                    and raw.status in (301, 302, 303, 307, 308)):
                raw.read()
                self._finish(scheme, netloc, conn, raw)
                new_url = urljoin(url, location)
                if urlsplit(new_url).netloc != netloc:
                    sent_headers.pop("Authorization", None)
                url = new_url
                continue
            try:
                yield response
            except BaseException:
                conn.close()
                raise
            self._finish(scheme, netloc, conn, raw)
            return
        raise TransportError(f"too many redirects from {url}")

    def _finish(self, scheme: str, netloc: str, conn: http.client.HTTPConnection,
                raw: http.client.HTTPResponse) -> None:
        # Only a connection whose response was read to the end can carry another one.
        if raw.isclosed() and not raw.will_close:
            self._give_back(scheme, netloc, conn)
        else:
            if not raw.isclosed():
                # Drain small leftovers (error bodies) to keep the connection.
                try:
                    leftover = raw.read(65536)
                except (OSError, http.client.HTTPException):
                    leftover = b"x"
                if raw.isclosed() and not raw.will_close and len(leftover) < 65536:
                    self._give_back(scheme, netloc, conn)
                    return
            conn.close()

    def _send(self, scheme: str, netloc: str, method: str, target: str,
              headers: dict[str, str], body: Body,
              verify: bool) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        retriable = body is None or isinstance(body, bytes)
        proxy = self.proxy_for(scheme, netloc)
        if proxy is not None and scheme == "http":
            target = f"http://{netloc}{target}"
            headers = {**headers, **proxy.headers}
        for attempt in range(2):
            conn = self._take(scheme, netloc, verify)
            fresh = conn.sock is None
            try:
                if isinstance(body, bytes) or body is None:
                    payload = body if body is not None else (
                        b"" if method in ("POST", "PUT", "PATCH") else None)
                    conn.request(method, target, body=payload, headers=headers)
                else:
                    conn.putrequest(method, target, skip_accept_encoding=True)
                    for name, value in headers.items():
                        conn.putheader(name, value)
                    conn.endheaders()
                    _send_stream(conn, body)
                raw = conn.getresponse()
                return conn, raw
            except _STALE as error:
                conn.close()
                if fresh or attempt or not retriable:
                    raise TransportError(f"{method} {scheme}://{netloc}{target}: "
                                         f"{error or type(error).__name__}") from None
            except (OSError, ssl.SSLError, http.client.HTTPException) as error:
                conn.close()
                raise TransportError(_describe(error, scheme, netloc, proxy)) from None
        raise AssertionError("unreachable")


def _send_stream(conn: http.client.HTTPConnection, body: IO[bytes]) -> None:
    sock = conn.sock
    assert sock is not None
    while True:
        chunk = body.read(1 << 20)
        if not chunk:
            return
        sock.sendall(chunk)


def _describe(error: BaseException, scheme: str, netloc: str,
              proxy: Proxy | None = None) -> str:
    if isinstance(error, ssl.SSLError):
        return f"Get \"{scheme}://{netloc}/v2/\": tls: {error.reason or error}"
    if isinstance(error, ConnectionRefusedError):
        if proxy is not None:
            return (f"Get \"{scheme}://{netloc}/v2/\": proxyconnect tcp: dial tcp "
                    f"{proxy.netloc}: connect: connection refused")
        return f"Get \"{scheme}://{netloc}/v2/\": dial tcp {netloc}: connect: connection refused"
    if isinstance(error, socket.timeout | TimeoutError):
        return f"Get \"{scheme}://{netloc}/v2/\": net/http: request canceled (timeout)"
    return f"Get \"{scheme}://{netloc}/v2/\": {error}"
