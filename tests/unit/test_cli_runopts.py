"""`run`/`create` flags -> the create request, compared with what the docker CLI sends.

Both CLIs talk to a small fake Engine API (API 1.41) on a unix socket that records the
requests; for each command line the create bodies and query strings must be equal (Binds,
built from a Go map by docker, compared as sets).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.cli._args import UsageError, parse
from dockyard.cli._runopts import build_create_body, go_duration, parse_port_spec
from dockyard.cli.container import _run_spec
from tests.fake_http import read_requests

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
SRC = str(Path(__file__).resolve().parents[2] / "src")


class FakeEngine:
    """Answers /_ping, create, start, wait and attach as dockerd 20.10 would, minimally."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.requests: list[tuple[str, str, bytes]] = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen(16)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            self._exchange(conn)
        except OSError:   # the client went away (docker cancels its waiter)
            pass

    def _exchange(self, conn: socket.socket) -> None:
        with conn:
            for method, target, _, body in read_requests(conn):
                self.requests.append((method, target, body))
                if not self._reply(conn, method, target):
                    return

    @staticmethod
    def _reply(conn: socket.socket, method: str, target: str) -> bool:
        base = ("HTTP/1.1 {}\r\nApi-Version: 1.41\r\nOstype: linux\r\n"
                "Content-Type: application/json\r\n")
        path = target.split("?")[0]
        if path == "/_ping":
            conn.sendall((base.format("200 OK") + "Content-Length: 2\r\n\r\nOK").encode()
                         if method == "GET" else
                         (base.format("200 OK") + "Content-Length: 0\r\n\r\n").encode())
        elif path.endswith("/containers/create"):
            body = json.dumps({"Id": "f" * 64, "Warnings": []})
            conn.sendall((base.format("201 Created") +
                          f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
        elif path.endswith("/start"):
            conn.sendall((base.format("204 No Content") + "\r\n").encode())
        elif path.endswith("/attach"):
            conn.sendall(b"HTTP/1.1 101 UPGRADED\r\nContent-Type: "
                         b"application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\n"
                         b"Upgrade: tcp\r\n\r\n")
            return False   # closing the stream: the container "exited"
        elif path.endswith("/wait"):
            body = json.dumps({"StatusCode": 0, "Error": None})
            conn.sendall((base.format("200 OK") +
                          f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
        else:
            body = json.dumps({"message": f"not here: {path}"})
            conn.sendall((base.format("404 Not Found") +
                          f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
        return True

    def create_request(self) -> tuple[dict[str, Any], str]:
        for method, target, body in self.requests:
            if method == "POST" and target.split("?")[0].endswith("/containers/create"):
                query = target.partition("?")[2]
                return json.loads(body), query
        raise AssertionError(f"no create request among {self.requests}")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[FakeEngine]:
    fake = FakeEngine(tmp_path / "engine.sock")
    yield fake
    fake.close()


def run_cli(argv: list[str], sock: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "DOCKER_HOST": f"unix://{sock}", "DOCKYARD_HOST": f"unix://{sock}",
           "DOCKER_CONFIG": str(tmp_path / "docker-config"), "PYTHONPATH": SRC,
           "FROM_ENV": "value-from-env"}
    return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=30, check=False)


def normalised(body: dict[str, Any]) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    # docker 28 builds Env through a Go map in one path: its order varies from run to run.
    if body.get("Env"):
        body["Env"] = sorted(body["Env"])
    host = body["HostConfig"]
    if host.get("Binds"):
        host["Binds"] = sorted(host["Binds"])
    return body


CASES = [
    ["busybox:test", "echo", "hi"],
    ["-i", "-t", "--name", "full1", "-e", "A=1", "--env", "UNSET_VAR", "-e", "FROM_ENV",
     "-w", "/tmp", "-u", "1000:1000", "--entrypoint", "/bin/sh", "-l", "x=y", "--label", "z",
     "--hostname", "hh", "--init", "--read-only", "--privileged", "--cap-add", "NET_ADMIN",
     "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--memory", "64m",
     "--cpus", "1.5", "--cpu-shares", "512", "--pids-limit", "100", "--ulimit",
     "nofile=1024:2048", "--ulimit", "nproc=50", "--tmpfs", "/run:rw,size=10m", "--tmpfs",
     "/x", "--shm-size", "32m", "--stop-signal", "SIGINT", "--stop-timeout", "5",
     "--restart", "on-failure:3", "--network", "none", "-p", "8080:80", "-p",
     "127.0.0.1:9090:90/udp", "-p", "7000", "-v", "/tmp:/hosttmp:ro", "-v", "vol1:/data",
     "-v", "/anon", "--mount", "type=bind,source=/tmp,target=/m1,readonly", "--mount",
     "type=volume,target=/m2,volume-label=a=b", "--mount", "type=tmpfs,target=/m3,"
     "tmpfs-size=1000", "--add-host", "foo:1.2.3.4", "--dns", "8.8.8.8", "--dns-search",
     "example.com", "--dns-option", "ndots:2", "--device", "/dev/null:/dev/xnull:rw",
     "--platform", "linux/amd64", "--expose", "5000", "busybox:test", "-c", "echo"],
    ["--rm", "--entrypoint", "", "-a", "stdout", "busybox:test"],
    ["--restart", "always", "--network", "host", "--ipc", "host", "--pid", "host",
     "--uts", "host", "--userns", "host", "--cgroupns", "private", "busybox:test"],
    ["--network", "mynet", "--network-alias", "web", "--ip", "10.1.2.3", "-P", "--expose",
     "80-82", "-p", "9000-9001:90-91", "busybox:test", "sleep", "1"],
    ["--health-cmd", "true", "--health-interval", "1m30s", "--health-retries", "3",
     "--health-timeout", "500ms", "--health-start-period", "2s", "busybox:test"],
    ["--no-healthcheck", "--log-driver", "json-file", "--log-opt", "max-size=1m",
     "--sysctl", "net.ipv4.ip_forward=1", "--group-add", "audio", "--link", "db:db",
     "--volumes-from", "other", "--memory-swap", "-1", "--memory-reservation", "1g",
     "--cpu-period", "100000", "--cpu-quota", "50000", "--cpuset-cpus", "0-1",
     "--oom-score-adj", "100", "--oom-kill-disable", "--blkio-weight", "300",
     "--device", "/dev/zero", "--device", "/dev/full:r", "--init=false",
     "--domainname", "example.org",
     "--runtime", "runc", "--cgroup-parent", "/p", "busybox:test", "sh", "-c", "x"],
    ["--mount", "type=bind,src=/tmp,dst=/b,bind-propagation=rslave", "--mount",
     "type=volume,source=v2,destination=/v,volume-nocopy,volume-driver=local,"
     "volume-opt=type=tmpfs", "--mount", "type=tmpfs,dst=/t,tmpfs-mode=1770",
     "--add-host", "bar=10.0.0.1", "busybox:test"],
]


@pytest.mark.parametrize("argv", CASES, ids=lambda argv: " ".join(argv)[:40])
def test_create_body_matches_docker(engine: FakeEngine, tmp_path: Path,
                                    argv: list[str]) -> None:
    docker = run_cli([DOCKER, "create", *argv], engine.path, tmp_path)
    assert docker.returncode == 0, docker.stderr
    expected, expected_query = engine.create_request()
    engine.requests.clear()
    ours = run_cli([sys.executable, "-m", "dockyard.cli.main", "create", *argv], engine.path,
                   tmp_path)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == docker.stdout
    body, query = engine.create_request()
    assert normalised(body) == normalised(expected)
    assert sorted(query.split("&")) == sorted(expected_query.split("&"))


@pytest.mark.parametrize("argv", [
    ["-d", "--name", "bg", "busybox:test", "sleep", "5"],
    ["-i", "--rm", "busybox:test", "cat"],
    ["-a", "stderr", "busybox:test"],
])
def test_run_body_matches_docker(engine: FakeEngine, tmp_path: Path, argv: list[str]) -> None:
    docker = run_cli([DOCKER, "run", *argv], engine.path, tmp_path)
    assert docker.returncode == 0, docker.stderr
    expected, _ = engine.create_request()
    docker_calls = [(m, t.split("?")[0].split("/", 2)[-1]) for m, t, _ in engine.requests]
    engine.requests.clear()
    ours = run_cli([sys.executable, "-m", "dockyard.cli.main", "run", *argv], engine.path,
                   tmp_path)
    assert ours.returncode == 0, ours.stderr
    body, _ = engine.create_request()
    assert normalised(body) == normalised(expected)
    our_calls = [(m, t.split("?")[0].split("/", 2)[-1]) for m, t, _ in engine.requests]
    # The same endpoints (docker runs some of them concurrently: compare as sets).
    assert set(our_calls) == set(docker_calls)


def body_for(argv: list[str], detach: bool = False) -> dict[str, Any]:
    opts, args = parse(_run_spec(True), argv)
    body, _ = build_create_body(opts, args[0], args[1:], detach)
    return body


def test_detach_clears_attach_flags() -> None:
    body = body_for(["-i", "-d", "img"], detach=True)
    assert (body["AttachStdin"], body["AttachStdout"], body["StdinOnce"]) == \
        (False, False, False)
    assert body["OpenStdin"] is True


def test_conflicts_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="Conflicting options: -a and -d"):
        body_for(["-a", "stdout", "-d", "img"], detach=True)
    with pytest.raises(UsageError, match="--restart and --rm"):
        body_for(["--rm", "--restart", "always", "img"])


def test_env_file_and_label_file(tmp_path: Path) -> None:
    (tmp_path / "env").write_text("# comment\nA=1\n\nB=two words\n")
    (tmp_path / "labels").write_text("x=1\ny\n")
    body = body_for(["--env-file", str(tmp_path / "env"), "-e", "C=3", "--label-file",
                     str(tmp_path / "labels"), "img"])
    assert body["Env"] == ["A=1", "B=two words", "C=3"]
    assert body["Labels"] == {"x": "1", "y": ""}


def test_port_specs() -> None:
    assert parse_port_spec("80") == [("80/tcp", {"HostIp": "", "HostPort": ""})]
    assert parse_port_spec("[::1]:8080:80/udp") == \
        [("80/udp", {"HostIp": "::1", "HostPort": "8080"})]
    assert [p for p, _ in parse_port_spec("1000-1002:2000-2002")] == \
        ["2000/tcp", "2001/tcp", "2002/tcp"]


def test_go_durations() -> None:
    assert go_duration("1m30s") == 90 * 10**9
    assert go_duration("500ms") == 5 * 10**8
    assert go_duration("1.5h") == 5400 * 10**9
    with pytest.raises(ValueError):
        go_duration("10")
