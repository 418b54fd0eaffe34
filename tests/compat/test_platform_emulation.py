"""A foreign-platform image (linux/arm64 on this amd64 host) runs under qemu-user-static
through binfmt_misc, with the docker CLI and dockyard against dockyardd; a missing
emulator gives an error that says what to install."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.image import host_platform
from tests.compat.conftest import FIXTURES, Daemon

MULTI = "multi:1.0"
QEMU_NAMES = {"amd64": "x86_64", "arm64": "aarch64"}


@pytest.fixture(scope="module")
def multiarch(daemon: Daemon) -> Daemon:
    assert host_platform().architecture == "amd64", "these tests expect an amd64 host"
    assert Path("/usr/bin/qemu-aarch64-static").exists(), \
        "qemu-user-static is needed: apt-get install qemu-user-static (scripts/install.sh)"
    daemon.docker("load", "-i", str(FIXTURES / "fixture-multiarch-oci.tar"), check=True)
    return daemon


def test_native_variant_runs_without_emulation(multiarch: Daemon) -> None:
    result = multiarch.docker("run", "--rm", MULTI, check=True)
    assert result.stdout == "x86_64\n"


def test_arm64_variant_runs_under_qemu_with_docker_and_dockyard(multiarch: Daemon) -> None:
    by_docker = multiarch.docker("run", "--rm", "--platform", "linux/arm64", MULTI,
                                 check=True)
    assert by_docker.stdout == "aarch64\n"
    by_dockyard = multiarch.dockyard("run", "--rm", "--platform", "linux/arm64", MULTI,
                                     "sh", "-c", "uname -m; echo $((6 * 7))", check=True)
    assert by_dockyard.stdout == "aarch64\n42\n"
    handler = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").read_text()
    assert handler.startswith("enabled\n") and "F" in handler.split("flags:")[1].split()[0]


def test_a_created_foreign_container_starts_again(multiarch: Daemon) -> None:
    name = "arm64-twice"
    multiarch.docker("create", "--name", name, "--platform", "linux/arm64", MULTI,
                     check=True)
    try:
        for _ in range(2):
            assert multiarch.docker("start", "-a", name, check=True).stdout == "aarch64\n"
    finally:
        multiarch.docker("rm", "-f", name)


def test_missing_emulator_error_names_the_package(tmp_path: Path) -> None:
    from dockyard.engine import emulation

    # The host's real binfmt_misc, a handler name nobody registered and no definitions.
    with pytest.raises(emulation.EmulatorMissing) as caught:
        emulation.ensure_emulator("arm64", config_dirs=(tmp_path,),
                                  prefix="dockyard-test-missing-")
    message = str(caught.value)
    assert "linux/arm64" in message and "apt-get install qemu-user-static" in message
    assert not Path("/proc/sys/fs/binfmt_misc/dockyard-test-missing-aarch64").exists()


def test_platform_that_the_image_lacks_is_refused(multiarch: Daemon) -> None:
    result = multiarch.docker("run", "--rm", "--platform", "linux/s390x", MULTI)
    assert result.returncode == 125
    assert "linux/s390x" in result.stderr
