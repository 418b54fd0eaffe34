"""The snapshotter's metadata: one small JSON file per layer and per snapshot.

Written atomically (temp file, fsync, rename, fsync of the directory) so that a daemon
killed at any instant finds either the old file or the new one.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, document: dict[str, Any], durable: bool = True) -> None:
    """Atomic against a killed process (rename); with `durable`, against a power loss too."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    data = json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, path)
    if durable:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a JSON object")
    return document


@dataclass(frozen=True)
class LayerRecord:
    """A committed, read-only layer: root/layers/<short id>/{diff/, layer.json}."""

    chain_id: str
    diff_id: str
    parent: str | None  # the parent's chain ID; None for a base layer
    size: int
    link: str  # its short name in root/l/, which keeps overlay mount options short
    # Published without waiting for its files to reach the disk: the boot ID of the kernel
    # that holds them in its page cache, until a later syncfs makes the layer durable.
    unsynced_boot: str | None = None

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        if self.unsynced_boot is None:
            del document["unsynced_boot"]
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> LayerRecord:
        return cls(chain_id=document["chain_id"], diff_id=document["diff_id"],
                   parent=document.get("parent"), size=int(document["size"]),
                   link=document["link"], unsynced_boot=document.get("unsynced_boot"))


@dataclass(frozen=True)
class SnapshotRecord:
    """A container's active snapshot: root/snapshots/<id>/{upper/, work/, snapshot.json}."""

    key: str
    parent: str | None  # chain ID of the topmost image layer; None for scratch
    created: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> SnapshotRecord:
        return cls(key=document["key"], parent=document.get("parent"),
                   created=float(document.get("created", 0.0)))
