"""What the registry server's integration tests share: a `dockyard registry serve`
subprocess on 127.0.0.1 and a small HTTP client. (No tests here.)"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DOCKYARD = str(Path(sys.executable).with_name("dockyard"))
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def codes(self) -> list[str]:
        return [error["code"] for error in self.json()["errors"]]


@dataclass
class Registry:
    """A running `dockyard registry serve`."""

    process: subprocess.Popen[str]
    root: Path
    port: int
    log_path: Path
    auth: str | None = None   # an Authorization header value sent with every request

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            sent = dict(headers or {})
            if self.auth and "Authorization" not in sent:
                sent["Authorization"] = self.auth
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()},
                         data)
        finally:
            connection.close()

    def push_blob(self, name: str, data: bytes) -> str:
        digest = digest_of(data)
        reply = self.request("POST", f"/v2/{name}/blobs/uploads/?digest={digest}", data,
                             {"Content-Type": "application/octet-stream"})
        assert reply.status == 201, reply
        return digest

    def push_image(self, name: str, tag: str, layer: bytes,
                   extra: dict[str, Any] | None = None) -> tuple[str, bytes]:
        config = b'{"architecture":"amd64","os":"linux"}'
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(name, config),
                               "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": self.push_blob(name, layer), "size": len(layer)}]}
        manifest.update(extra or {})
        data = json.dumps(manifest).encode()
        reply = self.request("PUT", f"/v2/{name}/manifests/{tag}", data,
                             {"Content-Type": OCI_MANIFEST})
        assert reply.status == 201, reply
        return digest_of(data), data

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_registry(root: Path, *args: str) -> Registry:
    """Start `dockyard registry serve` on a port the kernel picks; returns once it listens."""
    # stderr goes to a file: a pipe nobody reads would stall a server that logs a lot.
    log = root.with_name(root.name + ".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as err:
        process = subprocess.Popen(
            [DOCKYARD, "registry", "serve", "--addr", "127.0.0.1:0", "--root", str(root),
             "--no-fsync", *args],
            stdout=subprocess.PIPE, stderr=err, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("registry listening on http://127.0.0.1:"):
        process.kill()
        process.wait(10)
        raise AssertionError(f"registry did not start: {line!r} {log.read_text()!r}")
    return Registry(process, root, int(line.rsplit(":", 1)[1]), log_path=log)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    server = start_registry(tmp_path / "root")
    try:
        yield server
    finally:
        server.stop()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# skopeo run as root keeps a blob-info cache under /var/lib/containers. Each call gets an
# empty one of its own (a tmpfs in a private mount namespace): the tests leave nothing
# behind, and no entry from an earlier run makes skopeo try mounts from registries gone.
_PRIVATE_CACHE = ("if [ -d /var/lib/containers ]; then mount -t tmpfs tmpfs /var/lib/containers;"
                  " else mount -t tmpfs tmpfs /var/lib; fi && exec skopeo \"$@\"")


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             _PRIVATE_CACHE, "skopeo", *args],
                            capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result
