"""Removing a container's directory: at once (wait=True), or renamed out of the way and
deleted in the background (wait=False), with what a killed daemon left behind removed at
the next start, never loaded as a container."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dockyard.engine.container_store import RECORD, ContainerStore


def _record(container_id: str, name: str) -> dict[str, object]:
    return {"Id": container_id, "Name": name, "State": {"Running": False}}


def _wait_gone(path: Path) -> None:
    deadline = time.monotonic() + 10
    while path.exists():
        assert time.monotonic() < deadline, f"{path} is still there"
        time.sleep(0.01)


def test_background_removal_renames_then_deletes(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path / "containers")
    store.add(_record("a" * 64, "/one"), durable=False)
    (store.dir_of("a" * 64) / "rootfs").mkdir()
    store.save(store.get("/one"))
    store.remove("a" * 64, wait=False)
    assert not store.dir_of("a" * 64).exists()  # gone from its place at once
    assert store.all() == []
    _wait_gone(tmp_path / "containers" / f".removed-{'a' * 64}")
    assert list((tmp_path / "containers").iterdir()) == []


def test_unfinished_removal_is_finished_at_the_next_start(tmp_path: Path) -> None:
    root = tmp_path / "containers"
    store = ContainerStore(root)
    store.add(_record("b" * 64, "/kept"))
    # What a daemon killed during a background removal leaves: a renamed directory that
    # still holds its record.
    left = root / f".removed-{'c' * 64}"
    left.mkdir()
    (left / RECORD).write_text(json.dumps(_record("c" * 64, "/gone")))
    again = ContainerStore(root)
    assert [r["Id"] for r in again.all()] == ["b" * 64]
    assert not left.exists()


def test_removal_at_once(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path / "containers")
    store.add(_record("d" * 64, "/x"))
    store.remove("d" * 64)
    assert list((tmp_path / "containers").iterdir()) == []
