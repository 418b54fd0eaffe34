"""The API server on a temporary unix socket, driven by http.client and raw sockets."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

import pytest

from dockyard import __version__
from dockyard.api import (
    MULTIPLEXED_STREAM,
    STDERR,
    STDOUT,
    ApiServer,
    Hijack,
    HijackedStream,
    ListenError,
    NotFound,
    NotModified,
    Request,
    Response,
    Router,
    ServerConfig,
    StreamingResponse,
    demultiplex,
    frame,
    json_response,
    json_stream,
    stream_content_type,
    tar_stream,
)
from dockyard.api.testing import ServerThread

FOLLOW_CLOSED = threading.Event()


def make_router() -> Router:
    router = Router()

    @router.route("GET", "/containers/{id}/json")
    async def inspect(request: Request) -> Response:
        if request.params["id"] == "missing":
            raise NotFound("No such container: missing")
        return json_response({"Id": request.params["id"], "ApiVersion": request.version})

    @router.route("POST", "/containers/{id}/start")
    async def start(request: Request) -> Response:
        raise NotModified("container already started")

    @router.route("GET", "/images/{name:path}/json")
    async def image(request: Request) -> Response:
        return json_response({"Name": request.params["name"]})

    @router.route("GET", "/images/json")
    async def images(request: Request) -> Response:
        filters = request.query.filters()
        filters.validate({"dangling", "label"})
        return json_response({"all": request.query.get_bool("all"), "filters": dict(filters)})

    @router.route("POST", "/upload")
    async def upload(request: Request) -> Response:
        sizes = [len(chunk) async for chunk in request.body]
        return json_response({"total": sum(sizes), "chunks": len(sizes)})

    @router.route("POST", "/json")
    async def echo_json(request: Request) -> Response:
        return json_response({"got": await request.json()}, status=201)

    @router.route("GET", "/boom")
    async def boom(request: Request) -> Response:
        raise RuntimeError("kaboom")

    @router.route("GET", "/progress")
    async def progress(request: Request) -> StreamingResponse:
        async def items() -> AsyncIterator[object]:
            for number in range(request.query.get_int("count", 3)):
                yield {"status": f"step {number}"}
                await asyncio.sleep(0)
            if request.query.get_bool("fail"):
                raise NotFound("manifest unknown")
        return json_stream(items(), progress=True)

    @router.route("GET", "/export")
    async def export(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"a" * 1000
            yield b"b" * 70000
        return tar_stream(chunks())

    @router.route("GET", "/follow")
    async def follow(request: Request) -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            try:
                yield frame(STDOUT, b"first\n")
                await asyncio.sleep(3600)
                yield frame(STDOUT, b"never\n")
            finally:
                FOLLOW_CLOSED.set()
        return StreamingResponse(lines(), content_type=MULTIPLEXED_STREAM)

    @router.route("GET", "/slow")
    async def slow(request: Request) -> Response:
        await asyncio.sleep(float(request.query.get_str("seconds", "0.5")))
        return json_response("done")

    @router.route("POST", "/containers/{id}/attach")
    async def attach(request: Request) -> Hijack:
        if request.params["id"] == "missing":
            raise NotFound("No such container: missing")

        async def echo(stream: HijackedStream) -> None:
            while data := await stream.read():
                await stream.write(frame(STDOUT, data))
            # The client half-closed; output must still reach it.
            await stream.write(frame(STDERR, b"stdin closed\n"))

        return Hijack(echo, content_type=stream_content_type(request.version, True))

    @router.route("POST", "/exec/{id}/start")
    async def exec_start(request: Request) -> Hijack:
        # Read the options, then take a while (asking the engine) before hijacking.
        options = await request.json()
        await asyncio.sleep(0.05)

        async def echo(stream: HijackedStream) -> None:
            while data := await stream.read():
                await stream.write(data)
            await stream.write(json.dumps(options).encode())

        return Hijack(echo)

    return router


@pytest.fixture
def socket_path() -> Iterator[Path]:
    # Short paths: sun_path holds 107 bytes, pytest's tmp_path can be longer.
    directory = Path(tempfile.mkdtemp(prefix="dyapi-", dir="/tmp"))
    try:
        yield directory / "api.sock"
    finally:
        shutil.rmtree(directory)


@pytest.fixture
def server(socket_path: Path) -> Iterator[ServerThread]:
    with ServerThread(make_router(), socket_path) as running:
        yield running


def request(server: ServerThread, method: str, path: str,
            body: bytes | Iterable[bytes] | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = server.connection()
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def raw_exchange(path: Path, data: bytes, half_close: bool = True) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read_to_eof(sock)


def read_to_eof(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The response head up to the blank line, and whatever followed it."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {received!r}"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


# -- ping, headers, versions -------------------------------------------------------------

def test_ping_get_and_head(server: ServerThread) -> None:
    status, headers, body = request(server, "GET", "/_ping")
    assert (status, body) == (200, b"OK")
    assert headers["Api-Version"] == "1.45"
    assert headers["Docker-Experimental"] == "false"
    assert headers["Ostype"] == "linux"
    assert headers["Builder-Version"] == "1"
    assert headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert headers["Pragma"] == "no-cache"
    assert headers["Server"] == f"Dockyard/{__version__} (linux)"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    status, headers, body = request(server, "HEAD", "/_ping")
    assert (status, body, headers["Content-Length"]) == (200, b"", "0")
    assert headers["Api-Version"] == "1.45"
    assert request(server, "GET", "/v1.30/_ping")[2] == b"OK"


def test_version_prefix_and_negotiated_version(server: ServerThread) -> None:
    status, headers, body = request(server, "GET", "/v1.41/containers/abc/json")
    assert status == 200
    assert json.loads(body) == {"Id": "abc", "ApiVersion": "1.41"}
    assert headers["Api-Version"] == "1.45"  # always the server's own maximum
    assert json.loads(request(server, "GET", "/containers/abc/json")[2])["ApiVersion"] == (
        "1.45")


def test_version_too_new_and_too_old(server: ServerThread) -> None:
    status, headers, body = request(server, "GET", "/v1.99/containers/abc/json")
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"message": "client version 1.99 is too new. Maximum "
                                           "supported API version is 1.45"}
    status, _, body = request(server, "GET", "/v1.12/_ping")
    assert status == 400
    assert json.loads(body)["message"] == (
        "client version 1.12 is too old. Minimum supported API version is 1.24, please "
        "upgrade your client to a newer version")


def test_configured_version_range(socket_path: Path) -> None:
    config = ServerConfig(api_version="1.41", min_api_version="1.40")
    with ServerThread(make_router(), socket_path, config) as running:
        status, headers, body = request(running, "GET", "/v1.42/containers/x/json")
        assert status == 400 and b"Maximum supported API version is 1.41" in body
        assert request(running, "GET", "/_ping")[1]["Api-Version"] == "1.41"


# -- routing and errors ------------------------------------------------------------------

def test_path_parameters_with_slashes_and_quoting(server: ServerThread) -> None:
    _, _, body = request(server, "GET", "/v1.45/images/docker.io/library/busybox:latest/json")
    assert json.loads(body) == {"Name": "docker.io/library/busybox:latest"}
    # docker-py quotes '@'; the handler sees the reference unquoted.
    _, _, body = request(server, "GET", "/images/busybox%40sha256:abc/json")
    assert json.loads(body) == {"Name": "busybox@sha256:abc"}
    _, _, body = request(server, "GET", "/images/json?all=1&filters=%7B%22dangling%22%3A"
                                        "%5B%22true%22%5D%7D")
    assert json.loads(body) == {"all": True, "filters": {"dangling": ["true"]}}


def test_unknown_route_and_wrong_method_are_page_not_found(server: ServerThread) -> None:
    for method, path in [("GET", "/nope"), ("GET", "/v1.45/nope"),
                         ("DELETE", "/containers/abc/json"), ("GET", "/v1.99/nope")]:
        status, headers, body = request(server, method, path)
        assert status == 404, (method, path)
        assert json.loads(body) == {"message": "page not found"}
        assert headers["Content-Type"] == "application/json"


def test_errors_map_to_status_and_message(server: ServerThread) -> None:
    status, _, body = request(server, "GET", "/containers/missing/json")
    assert (status, json.loads(body)) == (404, {"message": "No such container: missing"})
    status, headers, body = request(server, "GET", "/boom")
    assert (status, json.loads(body)) == (500, {"message": "kaboom"})
    status, headers, body = request(server, "POST", "/containers/abc/start")
    assert (status, body) == (304, b"")
    status, _, body = request(server, "GET", "/images/json?filters=%7B%22x%22%3A%5B%5D%7D")
    assert (status, json.loads(body)) == (400, {"message": "invalid filter 'x'"})


def test_json_body_errors(server: ServerThread) -> None:
    json_header = {"Content-Type": "application/json"}
    status, _, body = request(server, "POST", "/json", b'{"a": [1, 2]}', json_header)
    assert (status, json.loads(body)) == (201, {"got": {"a": [1, 2]}})
    status, _, body = request(server, "POST", "/json", b'{"a": ', json_header)
    assert status == 400 and json.loads(body)["message"].startswith("invalid JSON: ")
    # An empty body is not an error, as with dockerd.
    status, _, body = request(server, "POST", "/json", b"", json_header)
    assert (status, json.loads(body)) == (201, {"got": None})


# -- bodies and streams ------------------------------------------------------------------

def test_request_body_content_length_and_chunked(server: ServerThread) -> None:
    payload = os.urandom(300_000)
    _, _, body = request(server, "POST", "/upload", payload)
    assert json.loads(body)["total"] == 300_000

    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"x" * 10_000

    _, _, body = request(server, "POST", "/upload", chunks())
    assert json.loads(body)["total"] == 50_000


def test_expect_100_continue(server: ServerThread) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(server.socket_path))
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        head, rest = read_head(sock)
        assert (head, rest) == (b"HTTP/1.1 100 Continue", b"")
        sock.sendall(b"hello")
        head, _ = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")


def test_streamed_progress_is_chunked_json_lines(server: ServerThread) -> None:
    connection = server.connection()
    connection.request("GET", "/progress?count=3&fail=1")
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Type") == "application/json"
    lines = response.read().split(b"\r\n")
    assert lines[-1] == b""
    assert [json.loads(line) for line in lines[:-1]] == [
        {"status": "step 0"}, {"status": "step 1"}, {"status": "step 2"},
        {"errorDetail": {"message": "manifest unknown"}, "error": "manifest unknown"}]
    connection.close()


def test_tar_stream(server: ServerThread) -> None:
    status, headers, body = request(server, "GET", "/export")
    assert headers["Content-Type"] == "application/x-tar"
    assert body == b"a" * 1000 + b"b" * 70000


def test_client_disconnect_closes_stream(server: ServerThread) -> None:
    FOLLOW_CLOSED.clear()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(server.socket_path))
        sock.sendall(b"GET /follow HTTP/1.1\r\nHost: x\r\n\r\n")
        head, rest = read_head(sock)
        assert b"Transfer-Encoding: chunked" in head
        assert b"Content-Type: application/vnd.docker.multiplexed-stream" in head
    assert FOLLOW_CLOSED.wait(5), "the stream generator was not closed"


def test_keep_alive_serves_several_requests_on_one_connection(server: ServerThread) -> None:
    connection = server.connection()
    connection.request("GET", "/_ping")
    assert connection.getresponse().read() == b"OK"
    sock = connection.sock
    for path in ["/containers/a/json", "/progress?count=2", "/containers/missing/json",
                 "/boom", "/nope"]:
        connection.request("GET", path)
        connection.getresponse().read()
        assert connection.sock is sock, path
    connection.request("POST", "/upload", b"z" * 100_000)
    assert json.loads(connection.getresponse().read())["total"] == 100_000
    assert connection.sock is sock
    connection.close()


def test_pipelined_requests(server: ServerThread) -> None:
    replies = raw_exchange(server.socket_path,
                           b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"GET /containers/c1/json HTTP/1.1\r\nHost: x\r\n\r\n"
                           b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                           half_close=False)
    assert replies.count(b"HTTP/1.1 200 ") == 3
    assert b'{"Id":"c1"' in replies


def test_malformed_request_gets_400(server: ServerThread) -> None:
    reply = raw_exchange(server.socket_path, b"NOT HTTP AT ALL\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")


def test_concurrent_slow_requests(server: ServerThread) -> None:
    results: list[int] = []

    def call() -> None:
        results.append(request(server, "GET", "/slow?seconds=0.5")[0])

    threads = [threading.Thread(target=call) for _ in range(20)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 20
    assert time.monotonic() - started < 3


# -- hijacking ----------------------------------------------------------------------------

ATTACH = (b"POST /v1.45/containers/abc/attach?stream=1&stdin=1&stdout=1 HTTP/1.1\r\n"
          b"Host: localhost\r\nContent-Type: text/plain\r\n")


def test_hijack_upgrade_echo_with_half_close(server: ServerThread) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(server.socket_path))
        # Bytes sent together with the request reach the handler too.
        sock.sendall(ATTACH + b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly ")
        head, rest = read_head(sock)
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 101 UPGRADED"
        assert b"Content-Type: application/vnd.docker.multiplexed-stream" in lines
        assert b"Connection: Upgrade" in lines and b"Upgrade: tcp" in lines
        sock.sendall(b"hello")
        time.sleep(0.05)
        sock.sendall(b" world")
        sock.shutdown(socket.SHUT_WR)
        stdout, stderr = demultiplex(rest + read_to_eof(sock))
    assert stdout == b"early hello world"
    assert stderr == b"stdin closed\n"


def test_hijack_without_upgrade_answers_200(server: ServerThread) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(server.socket_path))
        # With a body, as exec start sends one: the stream begins after it.
        sock.sendall(ATTACH.replace(b"/v1.45/", b"/v1.41/")
                     + b"Content-Length: 17\r\n\r\n{\"Detach\": false}ping")
        head, rest = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Content-Type: application/vnd.docker.raw-stream" in head
        assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
        time.sleep(0.05)
        sock.sendall(b" pong")
        sock.shutdown(socket.SHUT_WR)
        stream = rest + read_to_eof(sock)
    assert demultiplex(stream) == (b"ping pong", b"stdin closed\n")


def test_hijack_without_upgrade_after_reading_the_body(server: ServerThread) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(server.socket_path))
        sock.sendall(b"POST /exec/e1/start HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 16\r\n\r\n"
                     b'{"Detach":false}')
        time.sleep(0.01)
        sock.sendall(b"abc")
        head, rest = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        sock.sendall(b"def")
        sock.shutdown(socket.SHUT_WR)
        assert rest + read_to_eof(sock) == b'abcdef{"Detach": false}'


def test_hijack_refused_with_error_keeps_http(server: ServerThread) -> None:
    reply = raw_exchange(server.socket_path,
                         ATTACH.replace(b"/abc/", b"/missing/")
                         + b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 ")
    assert json.loads(body) == {"message": "No such container: missing"}


# -- listening and shutdown ----------------------------------------------------------------

def test_socket_mode_and_stale_socket_replaced(socket_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(socket_path))
    stale.close()  # a socket file nobody listens on, as after a crash
    with ServerThread(make_router(), socket_path) as running:
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o660
        assert request(running, "GET", "/_ping")[2] == b"OK"
        with pytest.raises(ListenError, match="another server is listening"):
            with ServerThread(make_router(), socket_path):
                pass
        assert request(running, "GET", "/_ping")[2] == b"OK"
    assert not socket_path.exists()


def test_refuses_to_replace_a_regular_file(socket_path: Path) -> None:
    socket_path.write_text("precious")
    with pytest.raises(ListenError, match="not a socket"):
        with ServerThread(make_router(), socket_path):
            pass
    assert socket_path.read_text() == "precious"


def test_tcp_listener() -> None:
    async def scenario() -> bytes:
        server = ApiServer(make_router())
        host, port = await server.listen_tcp("127.0.0.1", 0)
        assert server.addresses == [f"tcp://127.0.0.1:{port}"]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = await reader.read()
        writer.close()
        await server.shutdown()
        return reply

    reply = asyncio.run(scenario())
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\nOK")


def test_graceful_shutdown_lets_running_requests_finish(socket_path: Path) -> None:
    async def scenario() -> tuple[bytes, bool, float]:
        server = ApiServer(make_router())
        await server.listen_unix(socket_path)
        # An idle keep-alive connection must not hold the shutdown up.
        idle_reader, idle_writer = await asyncio.open_unix_connection(str(socket_path))
        idle_writer.write(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        await idle_reader.readuntil(b"\r\n\r\nOK")
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        writer.write(b"GET /slow?seconds=0.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.1)
        started = asyncio.get_running_loop().time()
        await server.shutdown(timeout=5)
        elapsed = asyncio.get_running_loop().time() - started
        reply = await reader.read()
        idle_closed = await idle_reader.read() == b""
        writer.close()
        idle_writer.close()
        return reply, idle_closed, elapsed

    reply, idle_closed, elapsed = asyncio.run(scenario())
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b"Connection: close" in reply and reply.endswith(b'"done"\n')
    assert idle_closed
    assert elapsed < 2
    assert not socket_path.exists()


def test_shutdown_timeout_cancels_streams(socket_path: Path) -> None:
    FOLLOW_CLOSED.clear()

    async def scenario() -> float:
        server = ApiServer(make_router())
        await server.listen_unix(socket_path)
        reader, writer = await asyncio.open_unix_connection(str(socket_path))
        writer.write(b"GET /follow HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"first\n")
        started = asyncio.get_running_loop().time()
        await server.shutdown(timeout=0.3)
        writer.close()
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(scenario()) < 2
    assert FOLLOW_CLOSED.is_set()


def test_expect_100_continue_refused_without_reading_body(server: ServerThread) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(server.socket_path))
        sock.sendall(b"POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        reply = read_to_eof(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 ")
    assert b"Connection: close" in head
    assert json.loads(body) == {"message": "page not found"}
