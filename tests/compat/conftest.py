"""A dockyardd on a temporary socket, data root and exec root, for the docker CLI,
docker-py and dockyard to talk to. Everything it made is removed at the end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.host import remove_cgroups, unmount_all_under

BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
# The test daemons reach registries on 127.0.0.1 only: anything else (an image name that
# would mean Docker Hub) goes to a proxy on a closed local port and fails at once, with no
# DNS lookup of an outside name.
_NOWHERE = "http://127.0.0.1:9"
OFFLINE_ENV = {**os.environ, "HTTPS_PROXY": _NOWHERE, "HTTP_PROXY": _NOWHERE,
               "NO_PROXY": "127.0.0.1,localhost,::1"}
DOCKER = "/usr/local/bin/docker" if Path("/usr/local/bin/docker").exists() else "docker"


class Daemon:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "d.sock"
        self.data_root = root / "data"
        self.exec_root = root / "exec"
        self.pidfile = root / "d.pid"
        self.cgroup_parent = f"/dockyard-test/daemon-{uuid.uuid4().hex[:8]}"
        # Each test daemon has its own default bridge and firewall chains (see cleanup).
        tag = uuid.uuid4().hex[:6]
        self.bridge = f"dyt{tag}"
        self.firewall_prefix = f"DYT{tag.upper()}"
        self.extra_args: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.log = root / "daemon.log"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        config = self.root / "daemon.json"
        config.write_text('{"log-opts": {"max-size": "1m", "max-file": "2"}}')
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "dockyardd"), "-H", self.host, "--data-root", str(self.data_root),
                 "--exec-root", str(self.exec_root), "--pidfile", str(self.pidfile),
                 "--cgroup-parent", self.cgroup_parent, "--config-file", str(config),
                 "--bridge", self.bridge, "--firewall-prefix", self.firewall_prefix,
                 "--log-level", "debug", *self.extra_args],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=OFFLINE_ENV)
        deadline = time.monotonic() + 15
        while not self.socket.exists():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "dockyardd did not start"
            time.sleep(0.02)
        self.docker("version", check=True)

    def stop(self, kill: bool = False) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(timeout=15)
        self.process = None
        if kill:
            self.socket.unlink(missing_ok=True)
            self.pidfile.unlink(missing_ok=True)

    def docker(self, *args: str, check: bool = False, input: str | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([DOCKER, *args], capture_output=True, text=True, input=input,
                                timeout=timeout, env={**os.environ, "DOCKER_HOST": self.host},
                                stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {args}: {result.returncode}\n{result.stderr}")
        return result

    def dockyard(self, *args: str, check: bool = False,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(BIN / "dockyard"), "-H", self.host, *args],
                                capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"dockyard {args}: {result.returncode}\n{result.stderr}")
        return result

    def cleanup(self) -> None:
        if self.process is not None:
            listing = self.docker("ps", "-aq")
            for container_id in listing.stdout.split():
                self.docker("rm", "-f", container_id)
            self.stop()
        _stop_shim(self.exec_root)
        unmount_all_under(self.root)
        remove_cgroups(self.cgroup_parent)
        remove_networking(self.data_root, self.bridge, self.firewall_prefix)


def daemon_bridges(data_root: Path, default_bridge: str) -> list[str]:
    """The bridge devices a daemon's networks use (the default one and user-defined)."""
    import json

    names = {default_bridge}
    for path in (data_root / "network").glob("*.json"):
        try:
            names.add(json.loads(path.read_text()).get("_Bridge") or default_bridge)
        except (OSError, ValueError):
            continue
    return sorted(n for n in names if n)


def networking_leftovers(data_root: Path, bridge: str, prefix: str) -> list[str]:
    """What a daemon's networking left on the host: bridges, firewall chains, netns."""
    from dockyard.network import bridge as bridges

    found = [f"bridge {n}" for n in daemon_bridges(data_root, bridge) if bridges.link_exists(n)]
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    found += [f"iptables {line}" for line in saved.splitlines() if prefix in line]
    mounts = Path("/proc/self/mountinfo").read_text()
    found += [f"mount {line.split()[4]}" for line in mounts.splitlines()
              if " nsfs " in line and str(data_root.parent) in line]
    return found


def remove_networking(data_root: Path, bridge: str, prefix: str) -> None:
    """The safety net after a test daemon: its bridges and firewall chains go."""
    from dockyard.network import Firewall
    from dockyard.network import bridge as bridges

    for name in daemon_bridges(data_root, bridge):
        bridges.delete_link(name)
    Firewall(prefix).teardown()


def _stop_shim(exec_root: Path) -> None:
    pid_file = exec_root / "shim.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text())
    except ValueError:
        return
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            from dockyard.shim.client import ShimClient

            with ShimClient.connect(str(exec_root), timeout=2) as client:
                client.shutdown()
        except Exception:  # noqa: BLE001 - then by signal
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not Path(f"/proc/{pid}").exists():
            return


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    require_root()
    assert shutil.which(DOCKER), "the docker CLI is needed for these tests"
    root = tmp_path_factory.mktemp("dyd")
    instance = Daemon(root)
    instance.start()
    instance.docker("load", "-i", str(FIXTURES / "fixture-docker20-save.tar"), check=True)
    try:
        yield instance
    finally:
        instance.cleanup()
        leftovers = [line for line in Path("/proc/self/mountinfo").read_text().splitlines()
                     if str(root) in line]
        assert not leftovers, f"mounts left behind: {leftovers}"
