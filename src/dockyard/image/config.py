"""Image configuration (OCI config / Docker image JSON), chain IDs and image IDs."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.image import _fields as fields
from dockyard.image.digest import Digest, sha256_of
from dockyard.image.errors import ManifestError
from dockyard.image.platform import Platform


@dataclass(frozen=True)
class Healthcheck:
    """Docker's HEALTHCHECK (durations in nanoseconds, 0 meaning "inherit/default")."""

    test: tuple[str, ...] | None = None
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class ContainerConfig:
    """The `config` object of an image: the defaults a container starts from.

    Lists that may be absent are None when absent: Docker distinguishes "not set"
    (inherit) from "set to empty" for Cmd, Entrypoint and Shell.
    """

    user: str = ""
    exposed_ports: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    stop_signal: str = ""
    healthcheck: Healthcheck | None = None
    on_build: tuple[str, ...] = ()
    shell: tuple[str, ...] | None = None
    args_escaped: bool = False


@dataclass(frozen=True)
class HistoryEntry:
    created: str = ""
    created_by: str = ""
    author: str = ""
    comment: str = ""
    empty_layer: bool = False


@dataclass(frozen=True)
class ImageConfig:
    """A parsed image config. `raw` keeps the whole document (Docker fields such as
    container_config or docker_version that the engine may show in `docker inspect`)."""

    architecture: str
    os: str
    diff_ids: tuple[Digest, ...]
    config: ContainerConfig = field(default_factory=ContainerConfig)
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()
    created: str | None = None  # RFC 3339 with nanoseconds, kept as written
    author: str = ""
    history: tuple[HistoryEntry, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant, self.os_version,
                        self.os_features)

    @property
    def chain_ids(self) -> list[Digest]:
        return chain_ids(self.diff_ids)


def _healthcheck(doc: fields.JSONObject, where: str) -> Healthcheck | None:
    check = fields.obj(doc, "Healthcheck", where)
    if check is None:
        return None
    where = fields.join(where, "Healthcheck")
    return Healthcheck(
        test=fields.strings(check, "Test", where),
        interval=fields.integer(check, "Interval", where),
        timeout=fields.integer(check, "Timeout", where),
        start_period=fields.integer(check, "StartPeriod", where),
        start_interval=fields.integer(check, "StartInterval", where),
        retries=fields.integer(check, "Retries", where),
    )


def _container_config(doc: fields.JSONObject | None, where: str) -> ContainerConfig:
    if doc is None:
        return ContainerConfig()
    return ContainerConfig(
        user=fields.string(doc, "User", where),
        exposed_ports=fields.key_set(doc, "ExposedPorts", where),
        env=fields.strings(doc, "Env", where) or (),
        entrypoint=fields.strings(doc, "Entrypoint", where),
        cmd=fields.strings(doc, "Cmd", where),
        volumes=fields.key_set(doc, "Volumes", where),
        working_dir=fields.string(doc, "WorkingDir", where),
        labels=fields.string_map(doc, "Labels", where),
        stop_signal=fields.string(doc, "StopSignal", where),
        healthcheck=_healthcheck(doc, where),
        on_build=fields.strings(doc, "OnBuild", where) or (),
        shell=fields.strings(doc, "Shell", where),
        args_escaped=fields.boolean(doc, "ArgsEscaped", where),
    )


def _history(doc: fields.JSONObject, what: str) -> tuple[HistoryEntry, ...]:
    entries = fields.array(doc, "history", what) or []
    where = fields.join(what, "history")
    result = []
    for index, entry in enumerate(entries):
        here = fields.join(where, index)
        if not isinstance(entry, dict):
            raise ManifestError(f"{here}: expected an object")
        result.append(HistoryEntry(
            created=fields.string(entry, "created", here),
            created_by=fields.string(entry, "created_by", here),
            author=fields.string(entry, "author", here),
            comment=fields.string(entry, "comment", here),
            empty_layer=fields.boolean(entry, "empty_layer", here),
        ))
    return tuple(result)


def parse_config(data: bytes, what: str = "config") -> ImageConfig:
    """Parse an image config; ManifestError names the field at fault.

    os and architecture default to "" when absent (old Docker images lack them, and
    Docker accepts them); rootfs is required, as Docker requires it.
    """
    doc = fields.load_object(data, what)
    rootfs = fields.obj(doc, "rootfs", what, required=True)
    assert rootfs is not None
    rootfs_where = fields.join(what, "rootfs")
    rootfs_type = fields.string(rootfs, "type", rootfs_where, required=True)
    if rootfs_type != "layers":
        raise ManifestError(f"{rootfs_where}.type: expected \"layers\", got {rootfs_type!r}")
    diff_list = fields.array(rootfs, "diff_ids", rootfs_where) or []
    diff_where = fields.join(rootfs_where, "diff_ids")
    diff_ids = tuple(fields.digest_value(item, fields.join(diff_where, index))
                     for index, item in enumerate(diff_list))
    created = doc.get("created")
    if created is not None and not isinstance(created, str):
        raise ManifestError(f"{fields.join(what, 'created')}: expected a string")
    return ImageConfig(
        architecture=fields.string(doc, "architecture", what),
        os=fields.string(doc, "os", what),
        diff_ids=diff_ids,
        config=_container_config(fields.obj(doc, "config", what), fields.join(what, "config")),
        variant=fields.string(doc, "variant", what),
        os_version=fields.string(doc, "os.version", what),
        os_features=fields.strings(doc, "os.features", what) or (),
        created=created,
        author=fields.string(doc, "author", what),
        history=_history(doc, what),
        raw=doc,
    )


def chain_ids(diff_ids: Sequence[str]) -> list[Digest]:
    """OCI chain IDs: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " +
    DiffID(Ln)). A chain ID names a stack of layers (the snapshot to unpack onto)."""
    result: list[Digest] = []
    for diff_id in diff_ids:
        if not result:
            result.append(Digest(diff_id))
        else:
            text = f"{result[-1]} {diff_id}".encode()
            result.append(Digest(f"sha256:{hashlib.sha256(text).hexdigest()}"))
    return result


def image_id(config_bytes: bytes) -> Digest:
    """The image ID Docker shows: the digest of the config blob."""
    return sha256_of(config_bytes)
