"""A container's own mounts: `-v /host:/ctr[:opts]` (HostConfig.Binds) and `--mount`
(HostConfig.Mounts) of type bind and tmpfs, as Docker validates and applies them.
Named and anonymous volumes belong to the volumes service, which does not exist yet."""

from __future__ import annotations

import os
from typing import Any

from .errors import InvalidParameter

_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")


class UserMount:
    def __init__(self, kind: str, source: str, destination: str, read_only: bool,
                 propagation: str = "rprivate", options: list[str] | None = None) -> None:
        self.kind = kind
        self.source = source
        self.destination = destination
        self.read_only = read_only
        self.propagation = propagation
        self.options = options or []

    def oci(self) -> dict[str, Any]:
        if self.kind == "tmpfs":
            return {"destination": self.destination, "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "noexec", *self.options,
                                *(["ro"] if self.read_only else [])]}
        return {"destination": self.destination, "type": "bind", "source": self.source,
                "options": ["rbind", self.propagation, "ro" if self.read_only else "rw"]}

    def inspect(self) -> dict[str, Any]:
        view: dict[str, Any] = {"Type": self.kind, "Source": self.source,
                                "Destination": self.destination, "Mode": "",
                                "RW": not self.read_only, "Propagation": ""}
        if self.kind == "bind":
            view["Propagation"] = self.propagation
        return view


def user_mounts(host_config: dict[str, Any], create_missing: bool = False) -> list[UserMount]:
    """Validated mounts of the container (InvalidParameter with Docker's messages).
    create_missing: make absent `-v` sources, as Docker does (`--mount` refuses them)."""
    mounts = [_bind(spec, create_missing) for spec in host_config.get("Binds") or []]
    mounts += [_mount(spec) for spec in host_config.get("Mounts") or []]
    seen: set[str] = set()
    for mount in mounts:
        if mount.destination in seen:
            raise InvalidParameter(f"Duplicate mount point: {mount.destination}")
        seen.add(mount.destination)
    return mounts


def _bind(spec: str, create_missing: bool) -> UserMount:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidParameter(f"invalid volume specification: '{spec}'")
    source, destination = parts[0], parts[1]
    options = parts[2].split(",") if len(parts) == 3 and parts[2] else []
    if not destination.startswith("/"):
        raise InvalidParameter(f"invalid volume specification: '{spec}': invalid mount config "
                               "for type \"bind\": invalid mount path: "
                               f"'{destination}' mount path must be absolute")
    if not source.startswith("/"):
        raise InvalidParameter(f"named volumes are not supported yet: '{source}' (use an "
                               "absolute host path)")
    read_only, propagation = False, "rprivate"
    for option in options:
        if option in ("ro", "rw"):
            read_only = option == "ro"
        elif option in _PROPAGATIONS:
            propagation = option
        elif option in ("z", "Z", "nocopy"):
            continue  # SELinux relabelling and volume copy do not apply to a bind here
        else:
            raise InvalidParameter(f"invalid mode: {option}")
    if create_missing and not os.path.exists(source):
        os.makedirs(source, mode=0o755, exist_ok=True)
    return UserMount("bind", os.path.normpath(source), os.path.normpath(destination),
                     read_only, propagation)


def _mount(spec: dict[str, Any]) -> UserMount:
    kind = spec.get("Type") or ""
    target = spec.get("Target") or ""
    if not target.startswith("/"):
        raise InvalidParameter(f"invalid mount config for type \"{kind}\": invalid mount "
                               f"path: '{target}' mount path must be absolute")
    read_only = bool(spec.get("ReadOnly"))
    if kind == "bind":
        source = spec.get("Source") or ""
        if not source.startswith("/"):
            raise InvalidParameter("invalid mount config for type \"bind\": invalid mount "
                                   f"path: '{source}' mount path must be absolute")
        if not os.path.exists(source):
            raise InvalidParameter("invalid mount config for type \"bind\": bind source path "
                                   f"does not exist: {source}")
        propagation = (spec.get("BindOptions") or {}).get("Propagation") or "rprivate"
        if propagation not in _PROPAGATIONS:
            raise InvalidParameter(f"invalid propagation mode: {propagation}")
        return UserMount("bind", os.path.normpath(source), os.path.normpath(target),
                         read_only, propagation)
    if kind == "tmpfs":
        options = spec.get("TmpfsOptions") or {}
        extra = []
        if options.get("SizeBytes"):
            extra.append(f"size={int(options['SizeBytes'])}")
        if options.get("Mode"):
            extra.append(f"mode={int(options['Mode']):o}")
        return UserMount("tmpfs", "", os.path.normpath(target), read_only, options=extra)
    if kind == "volume":
        raise InvalidParameter("volumes are not supported yet (--mount type=volume)")
    raise InvalidParameter(f"mount type unknown: \"{kind}\"")
