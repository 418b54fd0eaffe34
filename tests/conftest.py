"""Shared test fixtures: a busybox root filesystem built once per session."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def busybox_bundle_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle directory (rootfs + config.json) made from Debian's busybox-static."""
    directory = tmp_path_factory.mktemp("busybox-bundle")
    subprocess.run([str(PROJECT / "scripts" / "make-busybox-bundle.sh"), str(directory)],
                   check=True)
    return directory


def require_root() -> None:
    # A test that needs root must fail, not skip, when it does not have it.
    assert os.geteuid() == 0, "this test needs root (real namespaces, mounts and cgroups)"
