"""The registry client against Dockyard's own registry in bearer-token mode: the docker CLI
and dockyard log in through dockyardd's /auth, push and pull with tokens scoped per
repository; wrong credentials and missing scopes are refused."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.conftest import Daemon
from tests.integration.test_registry_server_support import Registry, start_registry

IMAGE = "dockyard-fixture:1.0"


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[Registry]:
    with socket.socket() as probe:   # the realm URL names the port, so choose it first
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    htpasswd = tmp_path / "htpasswd"
    for flags, user, password in (("-Bbc", "alice", "wonderland"), ("-Bb", "bob", "builder")):
        subprocess.run(["htpasswd", flags, str(htpasswd), user, password], check=True,
                       capture_output=True)
    policy = tmp_path / "policy"
    policy.write_text("alice * *\nbob team/* pull\n")
    server = start_registry(tmp_path / "root", "--htpasswd", str(htpasswd),
                            "--token-realm", f"http://127.0.0.1:{port}/token",
                            "--access-policy", str(policy), "--addr", f"127.0.0.1:{port}")
    try:
        yield server
    finally:
        server.stop()


def test_login_push_pull_with_tokens(daemon: Daemon, token_registry: Registry,
                                     tmp_path: Path) -> None:
    address = token_registry.address
    env_home = tmp_path / "client"
    ref = f"{address}/team/app:1"

    def docker(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "--config", str(env_home), "-H", daemon.host, *args],
                              capture_output=True, text=True, input=input, timeout=120,
                              stdin=None if input is not None else subprocess.DEVNULL)

    wrong = docker("login", "-u", "alice", "--password-stdin", address, input="nope\n")
    assert wrong.returncode == 1 and "unauthorized" in wrong.stderr.lower(), wrong.stderr
    assert not (env_home / "config.json").exists() or \
        address not in json.loads((env_home / "config.json").read_text()).get("auths", {})
    anonymous = (docker("tag", IMAGE, ref), docker("push", ref))[1]
    assert anonymous.returncode == 1
    assert "unauthorized" in anonymous.stderr.lower() or \
        "authentication required" in anonymous.stderr.lower(), anonymous.stderr
    logged = docker("login", "-u", "alice", "--password-stdin", address, input="wonderland\n")
    assert logged.returncode == 0 and "Login Succeeded" in logged.stdout, logged.stderr
    pushed = docker("push", ref)
    assert pushed.returncode == 0, pushed.stderr
    assert "1: digest: sha256:" in pushed.stdout
    assert docker("rmi", ref).returncode == 0
    pulled = docker("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert f"Status: Downloaded newer image for {ref}" in pulled.stdout
    # bob may pull team/*, not push there: a token without the push scope.
    assert docker("logout", address).returncode == 0
    assert docker("login", "-u", "bob", "--password-stdin", address,
                  input="builder\n").returncode == 0
    assert docker("pull", ref).returncode == 0
    other = f"{address}/team/app:2"
    docker("tag", IMAGE, other)
    refused = docker("push", other)
    assert refused.returncode == 1, refused.stdout
    assert "denied" in refused.stderr.lower() or "unauthorized" in refused.stderr.lower(), \
        refused.stderr
    for name in (ref, other):
        docker("rmi", name)
