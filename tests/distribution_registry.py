"""Debian's docker-registry (distribution 2.8) on 127.0.0.1 for the distribution tests and
the benchmark: a private instance on a free port and a temporary storage root, with or
without htpasswd basic auth. Stopped (and its process reaped) by `stop`."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Registry:
    def __init__(self, root: Path, users: dict[str, str] | None = None,
                 port: int = 0) -> None:
        self.root = root
        self.users = users or {}
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    def start(self) -> Registry:
        assert Path(REGISTRY).exists(), "docker-registry is needed (scripts/install.sh)"
        self.root.mkdir(parents=True, exist_ok=True)
        auth = ""
        if self.users:
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text("")
            for user, password in self.users.items():
                subprocess.run(["htpasswd", "-Bb", str(htpasswd), user, password], check=True,
                               capture_output=True)
            auth = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {htpasswd}\n"
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n{auth}")
        with open(self.root / "registry.log", "ab") as log:
            self.process = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=log,
                                            stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while True:
            assert self.process.poll() is None, (self.root / "registry.log").read_text()
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                break
            except urllib.error.HTTPError:
                break  # 401: up, and asking for credentials
            except OSError:
                assert time.monotonic() < deadline, "docker-registry did not start"
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None


@contextmanager
def running_registry(root: Path, users: dict[str, str] | None = None) -> Iterator[Registry]:
    """A started registry, stopped on leaving (the body of the tests' fixtures)."""
    instance = Registry(root, users).start()
    try:
        yield instance
    finally:
        instance.stop()
