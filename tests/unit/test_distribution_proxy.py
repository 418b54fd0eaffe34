"""The registry client's proxy, chosen from the environment as dockerd does."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from dockyard.distribution._http import ConnectionPool, Proxy, TransportError


def test_proxy_for_honours_no_proxy_and_credentials() -> None:
    pool = ConnectionPool(proxies={"http": "http://127.0.0.1:3128",
                                   "https": "http://user:p%40ss@127.0.0.1:3129",
                                   "no": "127.0.0.1,.internal"})
    assert pool.proxy_for("https", "registry-1.docker.io") == \
        Proxy("127.0.0.1:3129", {"Proxy-Authorization": "Basic dXNlcjpwQHNz"})
    assert pool.proxy_for("http", "example.com:5000") == Proxy("127.0.0.1:3128", {})
    assert pool.proxy_for("http", "127.0.0.1:5000") is None
    assert pool.proxy_for("https", "registry.internal") is None
    assert ConnectionPool(proxies={}).proxy_for("https", "example.com") is None


@pytest.fixture
def fake_proxy() -> Iterator[tuple[int, list[bytes]]]:
    """A proxy on 127.0.0.1 that records each request line: it answers a plain request
    itself and refuses tunnels (no traffic leaves the machine)."""
    seen: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                seen.append(data.split(b"\r\n", 1)[0])
                if data.startswith(b"CONNECT"):
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
                                 b"Connection: close\r\n\r\nvia proxy")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    server.close()
    thread.join(5)


def test_requests_go_through_the_proxy(fake_proxy: tuple[int, list[bytes]]) -> None:
    port, seen = fake_proxy
    proxy = f"http://127.0.0.1:{port}"
    pool = ConnectionPool(proxies={"http": proxy, "https": proxy})
    # The registry's name is never resolved here: the proxy gets it.
    with pool.request("GET", "http://registry.invalid:5000/v2/") as response:
        assert (response.status, response.read()) == (200, b"via proxy")
    assert seen[-1] == b"GET http://registry.invalid:5000/v2/ HTTP/1.1"
    with pytest.raises(TransportError):
        with pool.request("GET", "https://registry.invalid/v2/"):
            pass
    assert seen[-1] == b"CONNECT registry.invalid:443 HTTP/1.0"
    pool.close()


def test_a_closed_proxy_is_reported_as_docker_does() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = ConnectionPool(proxies={"https": f"http://127.0.0.1:{port}"})
    with pytest.raises(TransportError, match=f"proxyconnect tcp: dial tcp 127.0.0.1:{port}: "
                                             "connect: connection refused"):
        with pool.request("GET", "https://registry-1.docker.io/v2/"):
            pass
