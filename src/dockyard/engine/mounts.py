"""A container's own mounts as Docker parses and validates them: `-v src:dst[:opts]`
(HostConfig.Binds, where src is a host path or a volume name), `--mount` (HostConfig.Mounts:
bind, volume, tmpfs), the anonymous volumes of Config.Volumes (the image's VOLUME and
`-v /path`), and `--volumes-from`. Volumes are only named here (an anonymous one has no name
yet); the volumes service creates them and gives their paths (engine/_volume_attach.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from .errors import InvalidParameter
from .volumes import validate_volume_name

_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


class UserMount:
    """One mount point (Docker's MountPoint): kind is bind, volume or tmpfs."""

    def __init__(self, kind: str, source: str, destination: str, read_only: bool,
                 propagation: str = "rprivate", options: list[str] | None = None, *,
                 name: str = "", mode: str = "", copy_data: bool = False,
                 volume_labels: dict[str, str] | None = None,
                 volume_options: dict[str, str] | None = None) -> None:
        self.kind = kind
        self.source = source
        self.destination = destination
        self.read_only = read_only
        self.propagation = propagation
        self.options = options or []
        self.name = name
        self.mode = mode
        self.copy_data = copy_data
        self.volume_labels = volume_labels
        self.volume_options = volume_options

    def oci(self) -> dict[str, Any]:
        if self.kind == "tmpfs":
            return {"destination": self.destination, "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "noexec", *self.options,
                                *(["ro"] if self.read_only else [])]}
        propagation = self.propagation if self.kind == "bind" else "rprivate"
        return {"destination": self.destination, "type": "bind", "source": self.source,
                "options": ["rbind", propagation, "ro" if self.read_only else "rw"]}

    def inspect(self) -> dict[str, Any]:
        """The entry of the container's `Mounts` in inspect, exactly as Docker's."""
        view: dict[str, Any] = {"Type": self.kind}
        if self.kind == "volume":
            view["Name"] = self.name
        view.update({"Source": self.source, "Destination": self.destination})
        if self.kind == "volume":
            view["Driver"] = "local"
        view.update({"Mode": self.mode, "RW": not self.read_only,
                     "Propagation": self.propagation if self.kind == "bind" else ""})
        return view

    def to_json(self) -> dict[str, Any]:
        return {"Type": self.kind, "Name": self.name, "Source": self.source,
                "Destination": self.destination, "ReadOnly": self.read_only,
                "Propagation": self.propagation, "Options": self.options, "Mode": self.mode,
                "CopyData": self.copy_data}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> UserMount:
        return cls(doc["Type"], doc["Source"], doc["Destination"], doc["ReadOnly"],
                   doc.get("Propagation") or "rprivate", doc.get("Options") or [],
                   name=doc.get("Name") or "", mode=doc.get("Mode") or "",
                   copy_data=bool(doc.get("CopyData")))


def user_mounts(host_config: dict[str, Any], create_missing: bool = False) -> list[UserMount]:
    """Validated mounts of the container (InvalidParameter with Docker's messages).
    create_missing: make absent `-v` sources, as Docker does (`--mount` refuses them)."""
    binds = list(dict.fromkeys(host_config.get("Binds") or []))  # identical ones are one
    mounts = [_bind(spec, create_missing) for spec in binds]
    mounts += [_mount(spec) for spec in host_config.get("Mounts") or []]
    _check_duplicates(mounts)
    return mounts


def container_mounts(config: dict[str, Any], host_config: dict[str, Any],
                     volumes_from: Callable[[str], list[UserMount]],
                     create_missing: bool = True) -> list[UserMount]:
    """All the container's mount points: binds and mounts, those of --volumes-from
    containers (given by volumes_from(name)), and an anonymous volume for each path of
    Config.Volumes nothing else covers. Sorted so that a parent is mounted before what
    is mounted inside it."""
    driver = host_config.get("VolumeDriver") or "local"
    if driver != "local":
        raise InvalidParameter(f"error looking up volume plugin {driver}: plugin "
                               f"\"{driver}\" not found")
    mounts = user_mounts(host_config, create_missing)
    taken = {m.destination for m in mounts}
    for item in host_config.get("VolumesFrom") or []:
        container, _, mode = item.partition(":")
        if mode not in ("", "ro", "rw"):
            raise InvalidParameter(f"invalid mode: {mode}")
        for inherited in volumes_from(container):
            if inherited.destination in taken:
                continue
            inherited.read_only = inherited.read_only or mode == "ro"
            inherited.mode, inherited.copy_data = "", False
            mounts.append(inherited)
            taken.add(inherited.destination)
    taken |= {os.path.normpath(d) for d in host_config.get("Tmpfs") or {}}
    for path in config.get("Volumes") or {}:
        destination = os.path.normpath(path)
        if not destination.startswith("/"):
            raise InvalidParameter(f"invalid volume specification: '{path}': invalid mount "
                                   "config for type \"volume\": invalid mount path: "
                                   f"'{path}' mount path must be absolute")
        if destination not in taken:
            mounts.append(UserMount("volume", "", destination, False, copy_data=True))
            taken.add(destination)
    mounts.sort(key=lambda m: len([p for p in m.destination.split("/") if p]))
    return mounts


def _check_duplicates(mounts: list[UserMount]) -> None:
    seen: set[str] = set()
    for mount in mounts:
        if mount.destination in seen:
            raise InvalidParameter(f"Duplicate mount point: {mount.destination}")
        seen.add(mount.destination)


def _valid_mode(mode: str) -> bool:
    if not mode:
        return True
    counts = {"rw": 0, "label": 0, "propagation": 0, "copy": 0}
    for option in mode.split(","):
        if option in ("ro", "rw"):
            counts["rw"] += 1
        elif option in ("z", "Z"):
            counts["label"] += 1
        elif option in _PROPAGATIONS:
            counts["propagation"] += 1
        elif option in ("nocopy",):
            counts["copy"] += 1
        else:
            return False
    return all(n <= 1 for n in counts.values())


def _bind(spec: str, create_missing: bool) -> UserMount:
    parts = spec.split(":")
    if len(parts) == 1:
        source, destination, mode = "", parts[0], ""
    elif len(parts) == 2:
        if _valid_mode(parts[1]):
            raise InvalidParameter(f"invalid volume specification: '{spec}'")
        source, destination, mode = parts[0], parts[1], ""
    elif len(parts) == 3:
        source, destination, mode = parts
    else:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    if not destination:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    if not _valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    options = mode.split(",") if mode else []
    read_only = "ro" in options
    kind = "bind" if source.startswith("/") else "volume"
    if not destination.startswith("/"):
        raise InvalidParameter(f"invalid volume specification: '{spec}': invalid mount config "
                               f"for type \"{kind}\": invalid mount path: "
                               f"'{destination}' mount path must be absolute")
    if kind == "volume":
        if source:
            validate_volume_name(source)
        if any(o in _PROPAGATIONS for o in options):
            raise InvalidParameter(f"invalid volume specification: '{spec}': invalid mount "
                                   "config for type \"volume\": field BindOptions must not "
                                   "be specified")
        return UserMount("volume", "", os.path.normpath(destination), read_only,
                         name=source, mode=mode or ("z" if source else ""),
                         copy_data="nocopy" not in options)
    if "nocopy" in options:
        raise InvalidParameter(f"invalid volume specification: '{spec}': invalid mount config "
                               "for type \"bind\": field VolumeOptions must not be specified")
    propagation = next((o for o in options if o in _PROPAGATIONS), "rprivate")
    if create_missing and not os.path.exists(source):
        os.makedirs(source, mode=0o755, exist_ok=True)
    return UserMount("bind", os.path.normpath(source), os.path.normpath(destination),
                     read_only, propagation, mode=mode)


def _mount(spec: dict[str, Any]) -> UserMount:
    kind = spec.get("Type") or ""
    target = spec.get("Target") or ""
    config_error = f"invalid mount config for type \"{kind}\": "
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidParameter(f"mount type unknown: \"{kind}\"")
    if not target:
        raise InvalidParameter(config_error + "field Target must not be empty")
    if not target.startswith("/"):
        raise InvalidParameter(config_error + f"invalid mount path: '{target}' mount path "
                               "must be absolute")
    for field, allowed in (("BindOptions", "bind"), ("VolumeOptions", "volume"),
                           ("TmpfsOptions", "tmpfs")):
        if spec.get(field) and kind != allowed:
            raise InvalidParameter(config_error + f"field {field} must not be specified")
    read_only = bool(spec.get("ReadOnly"))
    source = spec.get("Source") or ""
    if kind == "bind":
        if not source:
            raise InvalidParameter(config_error + "field Source must not be empty")
        if not source.startswith("/"):
            raise InvalidParameter(config_error + f"invalid mount path: '{source}' mount "
                                   "path must be absolute")
        if not os.path.exists(source):
            raise InvalidParameter(config_error + f"bind source path does not exist: {source}")
        propagation = (spec.get("BindOptions") or {}).get("Propagation") or "rprivate"
        if propagation not in _PROPAGATIONS:
            raise InvalidParameter(f"invalid propagation mode: {propagation}")
        return UserMount("bind", os.path.normpath(source), os.path.normpath(target),
                         read_only, propagation)
    if kind == "tmpfs":
        if source:
            raise InvalidParameter(config_error + "field Source must not be specified")
        options = spec.get("TmpfsOptions") or {}
        extra = []
        if options.get("SizeBytes"):
            size = int(options["SizeBytes"])
            if size < 0:
                raise InvalidParameter(config_error + f"invalid tmpfs size: {size}")
            extra.append(f"size={size}")
        if options.get("Mode"):
            extra.append(f"mode={int(options['Mode']):o}")
        return UserMount("tmpfs", "", os.path.normpath(target), read_only, options=extra)
    if source:
        validate_volume_name(source)
    volume_options = spec.get("VolumeOptions") or {}
    driver_config = volume_options.get("DriverConfig") or {}
    if (driver_config.get("Name") or "local") != "local":
        name = driver_config["Name"]
        raise InvalidParameter(f"error looking up volume plugin {name}: plugin \"{name}\" "
                               "not found")
    return UserMount("volume", "", os.path.normpath(target), read_only, name=source,
                     mode="z", copy_data=not volume_options.get("NoCopy"),
                     volume_labels=volume_options.get("Labels") or None,
                     volume_options=driver_config.get("Options") or None)
