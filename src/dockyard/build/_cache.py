"""The build cache index: which image a step made, by the step's key.

A key is a digest over the parent image's ID, the step's configuration as it would be
committed (which holds the instruction, the environment, the build args it sees) and,
for COPY/ADD, the hash of the files' contents and metadata. The index is one small JSON
file, read once per build and rewritten atomically when a step adds to it; an entry
whose image was removed is simply a miss.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic


def step_key(parent_id: str, probe: dict[str, Any], extra: str = "") -> str:
    payload = json.dumps({"parent": parent_id, "config": probe, "extra": extra},
                         sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class BuildCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, str] | None = None
        self._mtime = 0.0

    def _load(self) -> dict[str, str]:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._entries = self._entries if self._entries is not None else {}
            return self._entries
        if self._entries is None or mtime != self._mtime:
            try:
                self._entries = dict(json.loads(self.path.read_bytes()))
            except (ValueError, OSError):
                self._entries = {}  # a damaged index is an empty cache, not a failed build
            self._mtime = mtime
        return self._entries

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._load().get(key)

    def put(self, key: str, image_id: str) -> None:
        with self._lock:
            entries = self._load()
            if entries.get(key) == image_id:
                return
            entries[key] = image_id
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(entries, separators=(",", ":")))
            self._mtime = self.path.stat().st_mtime

    def forget(self, image_ids: set[str]) -> int:
        """Drop the entries of these images (build prune); how many were dropped."""
        with self._lock:
            entries = self._load()
            keep = {k: v for k, v in entries.items() if v not in image_ids}
            dropped = len(entries) - len(keep)
            if dropped:
                self._entries = keep
                write_atomic(self.path, json.dumps(keep, separators=(",", ":")))
                self._mtime = self.path.stat().st_mtime
            return dropped

    def image_ids(self) -> set[str]:
        with self._lock:
            return set(self._load().values())
