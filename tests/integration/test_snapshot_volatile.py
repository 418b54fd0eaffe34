"""Containers removed when they stop (`run --rm`): their snapshot mounted with overlay's
`volatile` option, mountable again after an unmount (volatile or not), and removed in the
background once unmounted. Real overlayfs, as root."""

from __future__ import annotations

import time
from pathlib import Path

from dockyard.snapshot import InUseError, Snapshotter
from tests.integration.test_snapshot_overlay import (
    add_image,
    docker_save_layers,
    mounts_under,
    snapshotter,  # noqa: F401 - the fixture
)


def _volatile(target: Path) -> bool:
    """Whether the overlay at target skips syncs (shown as `fsync=volatile` by 6.x
    kernels, `volatile` by older ones)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.split()[4] == str(target):
            options = line.rsplit(" ", 1)[-1].split(",")
            return "volatile" in options or "fsync=volatile" in options
    raise AssertionError(f"{target} is not mounted")


def test_volatile_mount_remount_and_background_removal(snapshotter: Snapshotter,  # noqa: F811
                                                       tmp_path: Path) -> None:
    layers, diff_ids = docker_save_layers()
    top = add_image(snapshotter, layers, diff_ids)
    snapshotter.prepare("c1", top)
    target = tmp_path / "rootfs"
    target.mkdir()
    snapshotter.mount("c1", target, volatile=True)
    try:
        assert _volatile(target)
        (target / "written").write_text("kept across a clean unmount")
    finally:
        snapshotter.unmount(target)
    # The kernel leaves a marker that refuses any later mount of the work dir: cleared.
    for volatile in (False, True):
        snapshotter.mount("c1", target, volatile=volatile)
        try:
            assert _volatile(target) is volatile
            assert (target / "written").read_text() == "kept across a clean unmount"
        finally:
            snapshotter.unmount(target)
    snapshotter.mount("c1", target, volatile=True)
    try:
        try:
            snapshotter.remove("c1", wait=False)
        except InUseError:
            pass
        else:
            raise AssertionError("a mounted snapshot was removed")
    finally:
        snapshotter.unmount(target)
    snapshotter.remove("c1", wait=False)
    assert [s["key"] for s in snapshotter.snapshots()] == []
    staging = snapshotter.root / "tmp"
    deadline = time.monotonic() + 10
    while any(staging.iterdir()):
        assert time.monotonic() < deadline, "the removed snapshot's files are still there"
        time.sleep(0.01)
    assert not mounts_under(tmp_path)
