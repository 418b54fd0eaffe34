"""The container side of volumes: the mount points a container gets at create (volumes
made or found), what its start does with them (device mounts, the copy of the image's
content into a new volume), what its exit and removal release.

A container's mount points are kept beside its record in `mounts.json` (written
atomically): inspect's `Mounts` shows Docker's fields only, and the engine also needs
whether a volume still waits for its copy and a tmpfs's options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ._volume_copy import copy_up, resolve_in_root
from .errors import InvalidParameter, NotFound
from .mounts import UserMount, container_mounts
from .volumes import VolumeService

MOUNT_POINTS = "mounts.json"


def plan(config: dict[str, Any], host_config: dict[str, Any], volumes: VolumeService,
         lookup: Any, directory_of: Any) -> list[UserMount]:
    """The validated mount points of a new container; nothing is created yet.
    lookup(ref) finds a container record (--volumes-from), directory_of(id) its directory."""

    def inherited(ref: str) -> list[UserMount]:
        try:
            record = lookup(ref)
        except NotFound:
            # Not a 404: the docker CLI would take it for a missing image and pull.
            raise InvalidParameter(f"No such container: {ref}") from None
        return [m for m in load(directory_of(record["Id"]), record)]

    mounts = container_mounts(config, host_config, inherited)
    for mount in mounts:
        if mount.kind == "volume" and mount.name and not volumes.exists(mount.name) \
                and mount.volume_options:
            from .volumes import validate_options

            validate_options(mount.name, mount.volume_options)
    return mounts


def create_volumes(mounts: list[UserMount], volumes: VolumeService) -> None:
    """Named volumes that do not exist yet and the anonymous ones are made now, as Docker
    makes them at create; each mount then has its volume's path as source."""
    for mount in mounts:
        if mount.kind != "volume":
            continue
        volume = volumes.create(mount.name or None, options=mount.volume_options,
                                labels=mount.volume_labels)
        mount.name = volume["Name"]
        mount.source = str(volumes.path(mount.name))


def save(directory: Path, mounts: list[UserMount]) -> None:
    if not mounts and not (directory / MOUNT_POINTS).exists():
        return  # nothing to keep (and no fsync on the path of a plain `run`)
    write_atomic(directory / MOUNT_POINTS, json.dumps([m.to_json() for m in mounts]),
                 durable=True, mode=0o600)


def load(directory: Path, record: dict[str, Any]) -> list[UserMount]:
    """The mount points; from inspect's Mounts if a crash came before mounts.json."""
    path = directory / MOUNT_POINTS
    if path.is_file():
        return [UserMount.from_json(doc) for doc in json.loads(path.read_text())]
    result = []
    for view in record.get("Mounts") or []:
        result.append(UserMount(view["Type"], view.get("Source", ""), view["Destination"],
                                not view.get("RW", True), view.get("Propagation") or "rprivate",
                                name=view.get("Name", ""), mode=view.get("Mode", "")))
    return result


def start(directory: Path, record: dict[str, Any], rootfs: Path,
          volumes: VolumeService) -> list[dict[str, Any]]:
    """At start: device-backed volumes mounted, an empty new volume filled from the
    image's content at its path (once); the OCI mount entries of the mount points."""
    mounts = load(directory, record)
    copied = False
    for mount in mounts:
        if mount.kind != "volume":
            continue
        data = volumes.mount(mount.name)
        mount.source = str(data)
        volumes.events.emit("volume", "mount", mount.name, {
            "container": record["Id"], "destination": mount.destination, "driver": "local",
            "propagation": "", "read/write": str(not mount.read_only).lower()})
        if mount.copy_data:
            source = resolve_in_root(rootfs, mount.destination)
            if source is not None and source.is_dir() and not any(data.iterdir()):
                copy_up(source, data)
            mount.copy_data = False
            copied = True
    if copied:
        save(directory, mounts)
    return [m.oci() for m in mounts]


def release(container_id: str, directory: Path, record: dict[str, Any],
            volumes: VolumeService, running: set[str]) -> None:
    """After an exit: device mounts that no running container needs go."""
    for mount in load(directory, record):
        if mount.kind == "volume":
            volumes.release(mount.name, container_id, running)
            volumes.events.emit("volume", "unmount", mount.name,
                                {"container": container_id, "driver": "local"})


def remove_anonymous(record: dict[str, Any], volumes: VolumeService) -> None:
    """`rm -v`: the container's anonymous volumes that no other container uses (named
    volumes stay, as with Docker 23+). Called once the container is gone."""
    for view in record.get("Mounts") or []:
        name = view.get("Name")
        if view.get("Type") == "volume" and name and volumes.exists(name) \
                and volumes.is_anonymous(name):
            volumes.remove_if_unused(name)


def users_by_volume(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Volume name -> IDs of the containers (of any state) that mount it."""
    users: dict[str, list[str]] = {}
    for record in records:
        for view in record.get("Mounts") or []:
            if view.get("Type") == "volume" and view.get("Name"):
                users.setdefault(view["Name"], []).append(record["Id"])
    return users
