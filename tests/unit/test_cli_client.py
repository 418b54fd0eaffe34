"""The CLI's HTTP client (framing, keep-alive, errors, API version negotiation, hijack) and
the multiplexed-stream splitter, against a scripted server on a unix socket."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dockyard.cli._client import Client, DaemonError, urlencode
from dockyard.cli._jsonlite import dumps, dumps_go, loads
from dockyard.cli._session import Demuxer, demux_bytes
from tests.fake_http import read_requests

Handler = Callable[[str, str, dict[str, str], bytes], bytes | None]


class Server:
    """Serves each request with handler(method, target, headers, body) -> raw reply bytes;
    a None reply closes the connection. Records (method, target, connection number)."""

    def __init__(self, path: Path, handler: Handler, api: str = "1.41") -> None:
        self.handler = handler
        self.api = api
        self.seen: list[tuple[str, str, int]] = []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(8)
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, self.connections),
                             daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        with conn:
            for method, target, headers, body in read_requests(conn):
                self.seen.append((method, target, number))
                if target == "/_ping":
                    conn.sendall(f"HTTP/1.1 200 OK\r\nApi-Version: {self.api}\r\n"
                                 "Content-Length: 0\r\n\r\n".encode())
                    continue
                reply = self.handler(method, target, headers, body)
                if reply is None:
                    return
                conn.sendall(reply)
                if b"connection: close" in reply.lower():
                    return


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., tuple[Server, Client]]]:
    servers: list[Server] = []

    def start(handler: Handler, api: str = "1.41") -> tuple[Server, Client]:
        path = tmp_path / f"s{len(servers)}.sock"
        server = Server(path, handler, api)
        servers.append(server)
        return server, Client(f"unix://{path}")

    yield start
    for server in servers:
        server.sock.close()


def test_negotiates_and_reuses_the_connection(serve: Callable[..., tuple[Server, Client]]
                                              ) -> None:
    def handler(method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        text = dumps({"method": method, "target": target, "body": body.decode()})
        return f"HTTP/1.1 200 OK\r\nContent-Length: {len(text)}\r\n\r\n{text}".encode()

    server, client = serve(handler)
    first = client.get("/containers/json", {"all": "1", "filters": '{"a":{"b":true}}'})
    assert first["target"] == "/v1.41/containers/json?all=1&filters=%7B%22a%22%3A%7B%22b" \
                              "%22%3Atrue%7D%7D"
    second = client.post("/containers/x/start", None, {"k": "v"})
    assert loads(second["body"]) == {"k": "v"}
    # /_ping once, and everything on one kept-alive connection.
    assert [m for m, _, _ in server.seen] == ["HEAD", "GET", "POST"]
    assert {n for _, _, n in server.seen} == {1}


def test_client_caps_the_api_version(serve: Callable[..., tuple[Server, Client]]) -> None:
    _, client = serve(lambda *a: b"", api="1.50")
    assert client.negotiate() == "1.45"
    _, old = serve(lambda *a: b"", api="1.9")
    assert old.negotiate() == "1.9"


def test_chunked_and_json_stream(serve: Callable[..., tuple[Server, Client]]) -> None:
    payload = b'{"status":"a"}\r\n{"status":"b", "id": "x"}\n{"stat'
    rest = b'us":"c"}\n'

    def handler(*_: object) -> bytes:
        chunks = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in (payload, rest))
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"

    _, client = serve(handler)
    messages = list(client.request("POST", "/images/create").iter_json())
    assert [m["status"] for m in messages] == ["a", "b", "c"]


def test_read_to_close_body(serve: Callable[..., tuple[Server, Client]]) -> None:
    def handler(*_: object) -> bytes:
        return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"

    server, client = serve(handler)
    assert client.request("GET", "/export").read() == b"all of it"
    assert client.request("GET", "/export").read() == b"all of it"
    assert server.connections == 2      # a closed connection is not reused


def test_errors_carry_the_daemon_message(serve: Callable[..., tuple[Server, Client]]) -> None:
    def handler(*_: object) -> bytes:
        body = b'{"message":"No such container: x"}'
        return (b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%b" % (len(body), body))

    _, client = serve(handler)
    with pytest.raises(DaemonError) as caught:
        client.get("/containers/x/json")
    assert (caught.value.status, caught.value.message) == (404, "No such container: x")


def test_hijack_returns_bytes_read_past_the_headers(
        serve: Callable[..., tuple[Server, Client]]) -> None:
    frame = b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"

    def handler(method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        assert headers["upgrade"] == "tcp" and headers["connection"] == "Upgrade"
        return b"HTTP/1.1 101 UPGRADED\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n" + frame

    _, client = serve(handler)
    sock, leftover = client.hijack("/containers/x/attach", {"stream": "1"})
    data = leftover
    while len(data) < len(frame):
        data += sock.recv(100)
    sock.close()
    assert demux_bytes(data) == [(1, b"hi\n")]


def test_demuxer_splits_streams_across_reads() -> None:
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    stream = b"\x01\x00\x00\x00\x00\x00\x00\x04out\n\x02\x00\x00\x00\x00\x00\x00\x04err\n"
    demuxer = Demuxer(out_w, err_w)
    for i in range(0, len(stream), 5):
        demuxer.feed(stream[i:i + 5])
    os.close(out_w)
    os.close(err_w)
    assert os.read(out_r, 100) == b"out\n"
    assert os.read(err_r, 100) == b"err\n"
    os.close(out_r)
    os.close(err_r)


def test_json_and_query_helpers() -> None:
    assert loads(' {"a": [1, 2.5, null, true, "\\u00e9"]} ') == {"a": [1, 2.5, None, True, "é"]}
    assert dumps({"a": [1, None, "é"]}) == '{"a":[1,null,"é"]}'
    assert dumps_go({"x": "<&>"}) == '{"x":"\\u003c\\u0026\\u003e"}'
    with pytest.raises(ValueError):
        loads("{} extra")
    assert urlencode({"a": True, "b": None, "c": "x y/z"}) == "a=1&c=x%20y%2Fz"


# -- pull/push progress and login -------------------------------------------------------------

class FakeStream:
    def __init__(self, messages: list[dict[str, object]]) -> None:
        self.messages = messages

    def iter_json(self) -> Iterator[dict[str, object]]:
        return iter(self.messages)


class Output:
    def __init__(self, terminal: bool) -> None:
        self.text = ""
        self.terminal = terminal

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.terminal

    def fileno(self) -> int:
        raise OSError


PULL = [
    {"status": "Pulling from library/busybox", "id": "latest"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "a1b2c3d4e5f6"},
    {"status": "Downloading", "progressDetail": {"current": 1000, "total": 2000},
     "progress": "[=>  ]", "id": "a1b2c3d4e5f6"},
    {"status": "Download complete", "progressDetail": {}, "id": "a1b2c3d4e5f6"},
    {"status": "Pull complete", "progressDetail": {}, "id": "a1b2c3d4e5f6"},
    {"status": "Digest: sha256:" + "d" * 64},
    {"status": "Status: Downloaded newer image for busybox:latest"},
]


def test_progress_without_a_terminal_is_one_line_per_status() -> None:
    from dockyard.cli.image import display_progress

    out = Output(terminal=False)
    assert display_progress(FakeStream(PULL), out) == 0
    assert out.text == (
        "latest: Pulling from library/busybox\n"
        "a1b2c3d4e5f6: Pulling fs layer\n"
        "a1b2c3d4e5f6: Download complete\n"
        "a1b2c3d4e5f6: Pull complete\n"
        f"Digest: sha256:{'d' * 64}\n"
        "Status: Downloaded newer image for busybox:latest\n")


def test_progress_on_a_terminal_rewrites_the_layer_line() -> None:
    from dockyard.cli.image import display_progress

    out = Output(terminal=True)
    display_progress(FakeStream(PULL), out)
    # The layer's line is rewritten in place: cursor up, clear line, cursor down.
    assert out.text.startswith(
        "latest: Pulling from library/busybox\n"
        "\n\x1b[1A\x1b[2K\ra1b2c3d4e5f6: Pulling fs layer \r\x1b[1B"
        "\x1b[1A\x1b[2K\ra1b2c3d4e5f6: Downloading "
        f"[{'=' * 25}>{' ' * 25}]      1kB/2kB\r\x1b[1B")
    assert out.text.endswith("Status: Downloaded newer image for busybox:latest\n")


def test_progress_error_fails_the_command() -> None:
    from dockyard.cli._context import CommandFailed
    from dockyard.cli.image import display_progress

    stream = FakeStream([{"status": "Pulling"}, {"errorDetail": {"message": "denied"},
                                                 "error": "denied"}])
    with pytest.raises(CommandFailed, match="denied"):
        display_progress(stream, Output(terminal=False))


def test_login_stores_credentials_as_docker_does(
        serve: Callable[..., tuple[Server, Client]], tmp_path: Path) -> None:
    import base64
    import json

    from dockyard.cli._context import Context
    from dockyard.cli.registry import encoded_auth, login, logout

    seen: list[bytes] = []

    def handler(method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
        seen.append(body)
        reply = b'{"Status":"Login Succeeded","IdentityToken":""}'
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(reply), reply)

    _, client = serve(handler)
    ctx = Context("login", client.host, str(tmp_path / "cfg"))
    ctx._client = client
    assert login(ctx, ["-u", "me", "-p", "secret", "registry.local:5000"]) == 0
    assert json.loads(seen[0]) == {"username": "me", "password": "secret",
                                   "serveraddress": "registry.local:5000"}
    config = json.loads((tmp_path / "cfg" / "config.json").read_text())
    assert config["auths"]["registry.local:5000"]["auth"] == \
        base64.b64encode(b"me:secret").decode()
    header = json.loads(base64.urlsafe_b64decode(encoded_auth(ctx, "registry.local:5000")))
    assert header == {"username": "me", "password": "secret",
                      "serveraddress": "registry.local:5000"}
    assert logout(ctx, ["registry.local:5000"]) == 0
    config = json.loads((tmp_path / "cfg" / "config.json").read_text())
    assert config["auths"] == {}
    assert base64.urlsafe_b64decode(encoded_auth(ctx, "docker.io")) == b"{}"
