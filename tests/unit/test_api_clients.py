"""Real clients against the API server: docker-py and the docker CLI (28).

The handlers here are stand-ins for the engine's, just enough for each client command to
go through its whole exchange: /_ping negotiation, versioned paths, JSON bodies,
multiplexed log streams and hijacked exec with stdin half-closed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import docker
import pytest

from dockyard.api import (
    STDERR,
    STDOUT,
    Hijack,
    HijackedStream,
    NotFound,
    Request,
    Response,
    Router,
    StreamingResponse,
    demultiplex,
    frame,
    json_response,
    stream_content_type,
)
from dockyard.api.testing import ServerThread

DOCKER_CLI = shutil.which("docker") or "/usr/local/bin/docker"
CONTAINER_ID = "c0ffee" * 10 + "abcd"


def make_router() -> Router:
    router = Router()

    @router.route("GET", "/version")
    async def version(request: Request) -> Response:
        details = {"ApiVersion": "1.45", "MinAPIVersion": "1.24", "GitCommit": "0000000",
                   "GoVersion": "python", "Os": "linux", "Arch": "amd64",
                   "KernelVersion": os.uname().release, "BuildTime": "2025-01-01"}
        return json_response({
            "Platform": {"Name": "Dockyard"},
            "Components": [{"Name": "Engine", "Version": "0.1.0", "Details": details}],
            "Version": "0.1.0", **details})

    @router.route("GET", "/containers/{id}/json")
    async def inspect(request: Request) -> Response:
        if request.params["id"] not in ("web", CONTAINER_ID):
            raise NotFound(f"No such container: {request.params['id']}")
        return json_response({"Id": CONTAINER_ID, "Name": "/web",
                              "Config": {"Tty": False},
                              "State": {"Running": True, "Status": "running"}})

    @router.route("GET", "/containers/{id}/logs")
    async def logs(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            if request.query.get_bool("stdout"):
                yield frame(STDOUT, b"out line\n")
            if request.query.get_bool("stderr"):
                yield frame(STDERR, b"err line\n")
        return StreamingResponse(chunks(),
                                 content_type=stream_content_type(request.version, True))

    async def echo(stream: HijackedStream) -> None:
        while data := await stream.read():
            await stream.write(frame(STDOUT, data.upper()))
        await stream.write(frame(STDERR, b"stdin closed\n"))

    @router.route("POST", "/containers/{id}/attach")
    async def attach(request: Request) -> Hijack:
        return Hijack(echo, content_type=stream_content_type(request.version, True))

    @router.route("POST", "/containers/{id}/exec")
    async def exec_create(request: Request) -> Response:
        config = await request.json()
        assert config["AttachStdin"] is True, config
        return json_response({"Id": "e1"}, status=201)

    @router.route("POST", "/exec/{id}/start")
    async def exec_start(request: Request) -> Hijack:
        options = await request.json()
        assert options["Detach"] is False, options
        return Hijack(echo, content_type=stream_content_type(request.version, True))

    @router.route("GET", "/exec/{id}/json")
    async def exec_inspect(request: Request) -> Response:
        return json_response({"ID": "e1", "Running": False, "ExitCode": 3,
                              "ProcessConfig": {"tty": False}})

    return router


@pytest.fixture
def server() -> Iterator[ServerThread]:
    directory = Path(tempfile.mkdtemp(prefix="dyapi-", dir="/tmp"))
    try:
        with ServerThread(make_router(), directory / "api.sock") as running:
            yield running
    finally:
        shutil.rmtree(directory)


# -- docker-py ---------------------------------------------------------------------------

def test_docker_py_ping_and_version(server: ServerThread) -> None:
    client = docker.APIClient(base_url=server.base_url)
    try:
        assert client.ping() is True
        version = client.version()
        assert version["ApiVersion"] == "1.45"
        assert version["Components"][0]["Name"] == "Engine"
    finally:
        client.close()
    # version="auto" asks /version which API version to speak.
    auto = docker.APIClient(base_url=server.base_url, version="auto")
    try:
        assert auto.api_version == "1.45"
        assert auto.inspect_container("web")["Id"] == CONTAINER_ID
    finally:
        auto.close()


def test_docker_py_errors(server: ServerThread) -> None:
    client = docker.APIClient(base_url=server.base_url)
    try:
        with pytest.raises(docker.errors.NotFound, match="No such container: nope"):
            client.inspect_container("nope")
    finally:
        client.close()
    too_new = docker.APIClient(base_url=server.base_url, version="1.99")
    try:
        with pytest.raises(docker.errors.APIError, match="client version 1.99 is too new"):
            too_new.inspect_container("web")
    finally:
        too_new.close()


def test_docker_py_logs_demultiplexed(server: ServerThread) -> None:
    client = docker.APIClient(base_url=server.base_url)
    try:
        assert client.logs("web", stdout=True, stderr=False) == b"out line\n"
        assert client.logs("web", stdout=False, stderr=True) == b"err line\n"
        stream = client.logs("web", stdout=True, stderr=True, stream=True, follow=True)
        assert b"".join(stream) == b"out line\nerr line\n"
    finally:
        client.close()


def test_docker_py_attach_socket_hijack(server: ServerThread) -> None:
    client = docker.APIClient(base_url=server.base_url)
    try:
        wrapper = client.attach_socket("web", params={"stdin": 1, "stdout": 1,
                                                      "stream": 1})
        raw: socket.socket = wrapper._sock
        raw.settimeout(10)
        raw.sendall(b"hello from docker-py")
        raw.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := raw.recv(65536):
            received += chunk
        wrapper.close()
        assert demultiplex(received) == (b"HELLO FROM DOCKER-PY", b"stdin closed\n")
    finally:
        client.close()


# -- the docker CLI ----------------------------------------------------------------------

def docker_cli(server: ServerThread, *args: str, stdin: str | None = None
               ) -> subprocess.CompletedProcess[str]:
    assert os.access(DOCKER_CLI, os.X_OK), f"the docker CLI is needed: {DOCKER_CLI}"
    with tempfile.TemporaryDirectory(prefix="dyapi-cfg-") as config:
        environment = {key: value for key, value in os.environ.items()
                       if not key.startswith("DOCKER_")}
        environment.update(DOCKER_HOST=server.base_url, DOCKER_CONFIG=config)
        return subprocess.run([DOCKER_CLI, *args], input=stdin, capture_output=True,
                              text=True, env=environment, timeout=60)


def test_docker_cli_version(server: ServerThread) -> None:
    result = docker_cli(server, "version", "--format", "{{.Server.APIVersion}}")
    assert (result.returncode, result.stdout, result.stderr) == (0, "1.45\n", "")
    result = docker_cli(server, "version")
    assert result.returncode == 0, result.stderr
    assert "API version:       1.45 (downgraded from" in result.stdout
    assert "1.45 (minimum version 1.24)" in result.stdout


def test_docker_cli_logs_splits_stdout_and_stderr(server: ServerThread) -> None:
    result = docker_cli(server, "logs", "web")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "out line\n", "err line\n")
    result = docker_cli(server, "logs", "nope")
    assert result.returncode == 1
    assert result.stderr == "Error response from daemon: No such container: nope\n"


def test_docker_cli_exec_stdin_half_close(server: ServerThread) -> None:
    # The CLI shuts down its write side when stdin ends and keeps reading the output;
    # the exit code comes from GET /exec/{id}/json afterwards.
    result = docker_cli(server, "exec", "-i", "web", "cat", stdin="hello\nworld\n")
    assert (result.returncode, result.stdout, result.stderr) == (
        3, "HELLO\nWORLD\n", "stdin closed\n")
