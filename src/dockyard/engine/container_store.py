"""Containers on disk: one directory per container under <data-root>/containers, its record
in config.v2.json (written atomically and durably), and the name index kept in memory.

A record is Docker's container object as `inspect` shows it, less what is derived at read
time (State.Health, NetworkSettings details), so the API can return it nearly as stored.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from .errors import Conflict, InvalidParameter, NotFound

RECORD = "config.v2.json"
_TRASH = ".removed-"
_NAME = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def new_id() -> str:
    return secrets.token_hex(32)


def validate_name(name: str) -> str:
    """'/name' as Docker stores it; Docker's message for a bad one."""
    if not _NAME.match(name):
        raise InvalidParameter(f"Invalid container name ({name.lstrip('/')}), only "
                               "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    return "/" + name.lstrip("/")


class ContainerStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, Any]] = {}
        for entry in sorted(root.iterdir()):
            record_path = entry / RECORD
            if not record_path.is_file() or entry.name.startswith(_TRASH):
                # A create that died before its record was written, or a removal that was
                # not finished: nothing refers to it.
                shutil.rmtree(entry, ignore_errors=True)
                continue
            with open(record_path, "rb") as f:
                self._records[entry.name] = json.load(f)

    def dir_of(self, container_id: str) -> Path:
        return self.root / container_id

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records.values())

    def add(self, record: dict[str, Any], durable: bool = True) -> None:
        """durable=False: the caller saves the record (durably) again shortly."""
        with self._lock:
            if self._by_name(record["Name"]) is not None:
                existing = self._by_name(record["Name"])
                assert existing is not None
                raise Conflict(f'Conflict. The container name "{record["Name"]}" is already '
                               f'in use by container "{existing["Id"]}". You have to remove '
                               "(or rename) that container to be able to reuse that name.")
            self.dir_of(record["Id"]).mkdir(mode=0o710, exist_ok=True)
            self._records[record["Id"]] = record
            self.save(record, durable)

    def save(self, record: dict[str, Any], durable: bool = True) -> None:
        with self._lock:
            write_atomic(self.dir_of(record["Id"]) / RECORD, json.dumps(record),
                         durable=durable, mode=0o600)

    def remove(self, container_id: str, wait: bool = True) -> None:
        """wait=False: the directory is renamed out of the way now (a name without a
        record, which the next start removes) and deleted by a background thread."""
        with self._lock:
            self._records.pop(container_id, None)
            directory = self.dir_of(container_id)
            if not wait:
                trash = self.root / f"{_TRASH}{container_id}"
                try:
                    os.rename(directory, trash)
                except OSError:
                    pass
                else:
                    threading.Thread(target=shutil.rmtree, args=(trash, True),
                                     name="container-trash", daemon=True).start()
                    return
            shutil.rmtree(directory, ignore_errors=True)

    def rename(self, record: dict[str, Any], new_name: str) -> None:
        with self._lock:
            name = validate_name(new_name)
            holder = self._by_name(name)
            if holder is not None and holder["Id"] != record["Id"]:
                raise Conflict(f'Error when allocating new name: Conflict. The container name '
                               f'"{name}" is already in use by container "{holder["Id"]}". '
                               "You have to remove (or rename) that container to be able to "
                               "reuse that name.")
            record["Name"] = name
            self.save(record)

    def get(self, ref: str) -> dict[str, Any]:
        """By full ID, by name (with or without '/'), or by a unique ID prefix, as Docker."""
        with self._lock:
            if ref in self._records:
                return self._records[ref]
            by_name = self._by_name("/" + ref.lstrip("/"))
            if by_name is not None:
                return by_name
            matches = [r for cid, r in self._records.items() if cid.startswith(ref)] \
                if ref else []
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
            raise NotFound(f"No such container: {ref}")

    def _by_name(self, name: str) -> dict[str, Any] | None:
        return next((r for r in self._records.values() if r["Name"] == name), None)

    def unique_name(self) -> str:
        """Docker-like random names (adjective_noun), unique among ours."""
        from .names import random_name

        with self._lock:
            for attempt in range(100):
                name = "/" + random_name(attempt > 10)
                if self._by_name(name) is None:
                    return name
        raise Conflict("could not find a free random name")


def ensure_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o710)
