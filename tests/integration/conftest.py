"""Fixtures for tests that run real containers with dockyard-runc (as root)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_root

RUNTIME = str(Path(sys.executable).parent / "dockyard-runc")


class OCI:
    """Drives one runtime binary with its own --root; removes what it made at the end."""

    def __init__(self, root: Path, rootfs: Path, base_config: dict[str, Any],
                 workdir: Path, binary: str = RUNTIME) -> None:
        self.root = root
        self.rootfs = rootfs
        self.base_config = base_config
        self.workdir = workdir
        self.binary = binary
        self.prefix = f"t{uuid.uuid4().hex[:8]}"
        self._count = 0

    def new_id(self) -> str:
        self._count += 1
        return f"{self.prefix}-{self._count}"

    def config(self, args: list[str] | None = None) -> dict[str, Any]:
        config = copy.deepcopy(self.base_config)
        config["root"]["path"] = str(self.rootfs)
        if args is not None:
            config["process"]["args"] = args
        return config

    def bundle(self, config: dict[str, Any], container_id: str | None = None) -> Path:
        directory = self.workdir / f"bundle-{uuid.uuid4().hex[:8]}"
        directory.mkdir()
        config = copy.deepcopy(config)
        if container_id is not None:
            config["linux"].setdefault("cgroupsPath", f"/dockyard-test/{container_id}")
        (directory / "config.json").write_text(json.dumps(config))
        return directory

    def __call__(self, *args: str, check: bool = False, input: str | None = None,
                 timeout: float = 30) -> subprocess.CompletedProcess[str]:
        # Files, not pipes: a created container's init inherits our stdio and keeps it
        # open, so reading a pipe to its end would wait for the container.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            completed = subprocess.run([self.binary, "--root", str(self.root), *args],
                                       stdout=out, stderr=err, text=True, input=input,
                                       stdin=None if input is not None else subprocess.DEVNULL,
                                       timeout=timeout, check=False)
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(completed.args, completed.returncode,
                                                 out.read(), err.read())
        if check and result.returncode != 0:
            raise AssertionError(f"{args} failed ({result.returncode}): {result.stderr}")
        return result

    def run(self, args: list[str], config: dict[str, Any] | None = None,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
        container_id = self.new_id()
        config = config if config is not None else self.config()
        config = copy.deepcopy(config)
        config["process"]["args"] = args
        bundle = self.bundle(config, container_id)
        return self("run", "--bundle", str(bundle), container_id, **kwargs)

    def create(self, config: dict[str, Any], *extra: str) -> str:
        container_id = self.new_id()
        bundle = self.bundle(config, container_id)
        self("create", "--bundle", str(bundle), *extra, container_id, check=True)
        return container_id

    def state(self, container_id: str) -> dict[str, Any]:
        return json.loads(self("state", container_id, check=True).stdout)

    def cleanup(self) -> None:
        listing = self("list", "--format", "json")
        for doc in json.loads(listing.stdout or "null") or []:
            self("delete", "--force", doc["id"])


def leftover_cgroups(prefix: str) -> list[str]:
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        parent = base / "dockyard-test"
        if parent.is_dir():
            found += [str(p) for p in parent.iterdir() if p.name.startswith(prefix)]
    return found


@pytest.fixture
def oci(tmp_path: Path, busybox_bundle_template: Path) -> Iterator[OCI]:
    require_root()
    base = json.loads((busybox_bundle_template / "config.json").read_text())
    runtime = OCI(tmp_path / "state", busybox_bundle_template / "rootfs", base, tmp_path)
    yield runtime
    runtime.cleanup()
    assert leftover_cgroups(runtime.prefix) == [], "a test left a cgroup behind"
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path) not in mounts, "a test left a mount behind"
    # Only the compiled-filter cache may stay: it is keyed by content, not by container.
    state = tmp_path / "state"
    assert not [d for d in state.glob("*") if d.name != "seccomp@cache"] if state.exists() \
        else True


@pytest.fixture(scope="session", autouse=True)
def _remove_test_cgroup_parents() -> Iterator[None]:
    yield
    for base in Path("/sys/fs/cgroup").iterdir():
        parent = base / "dockyard-test"
        if parent.is_dir():
            try:
                os.rmdir(parent)
            except OSError:
                pass
