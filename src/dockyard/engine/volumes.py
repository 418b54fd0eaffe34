"""Volumes of the `local` driver, as Docker keeps them: one directory per volume under
<data-root>/volumes/<name>, the data in `_data`, the metadata in `volume.json` (written
atomically and durably; a directory without it is a create that never finished).

A volume made with `-o type=... -o device=... [-o o=...]` is a mount of that device on
`_data`, made when a container that uses it starts and undone when the last such container
stops, as Docker's local driver does. Which containers use a volume is the containers'
business: the service asks `users()` (volume name -> container IDs) when it must know.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from .errors import Conflict, InvalidParameter, NotFound
from .events import EventBus

DRIVER = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
METADATA = "volume.json"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_VALID_OPTS = ("type", "device", "o", "size")
# An option that needs others, as the local driver checks it.
_REQUIRED_WITH = {"device": ("type",), "type": ("device",), "o": ("device", "type")}
_TRASH = ".trash-"


def validate_volume_name(name: str) -> None:
    """Docker's messages (without the "create NAME: " prefix the caller adds)."""
    if len(name) == 1:
        raise InvalidParameter(f"create {name}: volume name is too short, names should be at "
                               "least two alphanumeric characters")
    if not _NAME.match(name):
        raise InvalidParameter(
            f"create {name}: \"{name}\" includes invalid characters for a local volume name, "
            "only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host "
            "directory, use absolute path")


def validate_options(name: str, options: dict[str, str]) -> None:
    for key in options:
        if key not in _VALID_OPTS:
            raise InvalidParameter(f"create {name}: invalid option: \"{key}\"")
    if "size" in options:
        raise InvalidParameter(f"create {name}: quota size requested but no quota support")
    for key, needed in _REQUIRED_WITH.items():
        if key in options:
            for other in needed:
                if other not in options:
                    raise InvalidParameter(f"create {name}: missing required option: "
                                           f"\"{other}\"")


def created_at(seconds: float) -> str:
    """RFC 3339 in the local zone, whole seconds (Go's time.RFC3339), as Docker shows it."""
    local = time.localtime(seconds)
    offset = time.strftime("%z", local)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


class VolumeService:
    def __init__(self, root: Path, events: EventBus,
                 users: Callable[[], dict[str, list[str]]] | None = None) -> None:
        self.root = root
        self.events = events
        self.users = users or dict
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._volumes: dict[str, dict[str, Any]] = {}
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(_TRASH) or entry.name.startswith("."):
                shutil.rmtree(entry, ignore_errors=True)  # a removal a crash interrupted
                continue
            meta = entry / METADATA
            if not meta.is_file():
                if entry.is_dir() and not any((entry / "_data").iterdir()
                                              if (entry / "_data").is_dir() else []):
                    shutil.rmtree(entry, ignore_errors=True)  # a create that never finished
                continue
            with open(meta, "rb") as f:
                self._volumes[entry.name] = json.load(f)

    # -- lookups --------------------------------------------------------------------------

    def path(self, name: str) -> Path:
        return self.root / name / "_data"

    def get(self, name: str) -> dict[str, Any]:
        with self._lock:
            volume = self._volumes.get(name)
            if volume is None:
                raise NotFound(f"get {name}: no such volume")
            return volume

    def exists(self, name: str) -> bool:
        with self._lock:
            return name in self._volumes

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._volumes.values())

    def view(self, volume: dict[str, Any]) -> dict[str, Any]:
        """The API's Volume object (inspect and list)."""
        return {"CreatedAt": volume["CreatedAt"], "Driver": volume["Driver"],
                "Labels": volume.get("Labels"), "Mountpoint": str(self.path(volume["Name"])),
                "Name": volume["Name"], "Options": volume.get("Options"), "Scope": "local"}

    def inspect(self, name: str) -> dict[str, Any]:
        return self.view(self.get(name))

    def is_anonymous(self, name: str) -> bool:
        labels = self.get(name).get("Labels") or {}
        return ANONYMOUS_LABEL in labels

    # -- create and remove ----------------------------------------------------------------

    def create(self, name: str | None = None, driver: str | None = None,
               options: dict[str, str] | None = None, labels: dict[str, str] | None = None,
               anonymous: bool = False) -> dict[str, Any]:
        """An existing volume of that name is returned as it is (Docker's behaviour)."""
        driver = driver or DRIVER
        if not name:
            name = secrets.token_hex(32)
            anonymous = True
        validate_volume_name(name)
        if driver != DRIVER:
            raise NotFound(f"create {name}: error looking up volume plugin {driver}: plugin "
                           f"\"{driver}\" not found")
        with self._lock:
            existing = self._volumes.get(name)
            if existing is not None:
                return existing
            if options:
                validate_options(name, options)
            if anonymous:
                labels = {**(labels or {}), ANONYMOUS_LABEL: ""}
            volume = {"Name": name, "Driver": driver, "CreatedAt": created_at(time.time()),
                      "Labels": labels, "Options": options or None}
            directory = self.root / name
            (directory / "_data").mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o701)
            write_atomic(directory / METADATA, json.dumps(volume), durable=True, mode=0o600)
            self._volumes[name] = volume
        self.events.emit("volume", "create", name, {"driver": driver})
        return volume

    def remove(self, name: str, force: bool = False) -> None:
        with self._lock:
            if name not in self._volumes:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users().get(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
            self._discard(name)

    def _discard(self, name: str) -> None:
        directory = self.root / name
        data = directory / "_data"
        if is_mount_point(data):
            unmount(data)
        # One rename makes the removal atomic; the tree goes after (or at the next start).
        trash = self.root / f"{_TRASH}{name}-{secrets.token_hex(4)}"
        os.rename(directory, trash)
        del self._volumes[name]
        shutil.rmtree(trash, ignore_errors=True)
        self.events.emit("volume", "destroy", name, {"driver": DRIVER})

    def remove_if_unused(self, name: str) -> bool:
        """For `rm -v`: an anonymous volume no other container uses goes."""
        with self._lock:
            if name not in self._volumes or self.users().get(name):
                return False
            self._discard(name)
            return True

    def prune(self, labels: Callable[[dict[str, str]], bool],
              everything: bool = False) -> tuple[list[str], int]:
        """Unused volumes whose labels pass `labels`; only anonymous ones unless
        `everything` (Docker 23+'s default, all=true for the old one)."""
        deleted, reclaimed = [], 0
        with self._lock:
            used = self.users()
            for name, volume in list(self._volumes.items()):
                volume_labels = volume.get("Labels") or {}
                if used.get(name) or not labels(volume_labels):
                    continue
                if not everything and ANONYMOUS_LABEL not in volume_labels:
                    continue
                size = self.size(name)
                self._discard(name)
                deleted.append(name)
                reclaimed += size
        return deleted, reclaimed

    def size(self, name: str) -> int:
        return tree_size(self.path(name))

    # -- use by containers ----------------------------------------------------------------

    def mount(self, name: str) -> Path:
        """The volume's host path, its device mounted first if it has one."""
        with self._lock:
            volume = self.get(name)
            data = self.path(name)
            options = volume.get("Options") or {}
            if (options.get("type") or options.get("device")) and not is_mount_point(data):
                mount_device(options, data)
            return data

    def release(self, name: str, container_id: str, running: set[str]) -> None:
        """The container no longer uses the volume: its device mount goes when no other
        running container uses the volume (from the records: a restarted daemon knows)."""
        with self._lock:
            if name not in self._volumes:
                return
            holders = set(self.users().get(name, [])) & running - {container_id}
            data = self.path(name)
            if not holders and is_mount_point(data):
                unmount(data)

    def usage(self) -> list[dict[str, Any]]:
        """/system/df's Volumes: each with UsageData (Size, RefCount)."""
        used = self.users()
        return [{**self.view(v), "UsageData": {"Size": self.size(v["Name"]),
                                               "RefCount": len(used.get(v["Name"], []))}}
                for v in self.all()]


def is_mount_point(path: Path) -> bool:
    """From the mount table: a bind mount within one file system has the parent's st_dev,
    so os.path.ismount cannot tell."""
    wanted = os.path.realpath(path).encode()
    with open("/proc/self/mountinfo", "rb") as table:
        for line in table:
            mount_point = line.split(b" ", 5)[4]
            if b"\\" in mount_point:
                mount_point = mount_point.decode("unicode_escape").encode("latin-1")
            if mount_point == wanted:
                return True
    return False


def tree_size(path: Path) -> int:
    """Apparent size of the files (and symlinks) under path, hard links counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirs, files in os.walk(path):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(directory, d))]:
            try:
                st = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


# -- the local driver's device mounts -------------------------------------------------------

_FLAGS = {"ro": 1, "nosuid": 2, "nodev": 4, "noexec": 8, "sync": 16, "remount": 32,
          "mand": 64, "dirsync": 128, "noatime": 1024, "nodiratime": 2048, "bind": 4096,
          "rbind": 4096 | 16384, "relatime": 1 << 21, "strictatime": 1 << 24}
_CLEARING = {"rw": 1, "suid": 2, "dev": 4, "exec": 8, "async": 16, "atime": 1024,
             "diratime": 2048}


def mount_device(options: dict[str, str], target: Path) -> None:
    """mount -t TYPE -o O DEVICE TARGET, with the flags of O given as flags and the rest as
    data, as Docker's local driver does (type "none" with o=bind is a bind mount)."""
    import ctypes

    kind = options.get("type") or "none"
    device = options.get("device") or "none"
    flags, data = 0, []
    for option in (options.get("o") or "").split(","):
        if not option:
            continue
        if option in _FLAGS:
            flags |= _FLAGS[option]
        elif option in _CLEARING:
            flags &= ~_CLEARING[option]
        else:
            data.append(option)
    if flags & 4096 and kind == "none" and not os.path.exists(device):
        raise InvalidParameter(f"error while mounting volume '{target}': failed to mount "
                               f"local volume: mount {device}:{target}, flags: "
                               f"{hex(flags)}: no such file or directory")
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.mount(device.encode(), str(target).encode(), kind.encode(),
                        ctypes.c_ulong(flags), ",".join(data).encode() or None)
    if result != 0:
        error = ctypes.get_errno()
        raise InvalidParameter(f"error while mounting volume '{target}': failed to mount "
                               f"local volume: mount {device}:{target}, data: "
                               f"{','.join(data)}: {os.strerror(error).lower()}")
    if flags & 4096 and flags & 1:
        # A read-only bind needs a remount to take the flag.
        libc.mount(None, str(target).encode(), None, ctypes.c_ulong(flags | 32), None)


def unmount(target: Path) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(str(target).encode(), 0) != 0:
        libc.umount2(str(target).encode(), 2)  # MNT_DETACH: busy, let it go when free
