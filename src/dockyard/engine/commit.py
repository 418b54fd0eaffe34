"""Images made from files: `docker commit` (a container's changes as a new layer on its
image) and `docker import` (a tarball as a one-layer image), with the --change
instructions both accept."""

from __future__ import annotations

import hashlib
import json
import posixpath
import shlex
import tarfile
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from ..compression import corrupt_data_errors, open_decompressed
from ..image import (
    Descriptor,
    ImageError,
    Platform,
    describe,
    host_platform,
    mediatypes,
    parse_platform,
    parse_reference,
)
from ..image.manifest import build_manifest, to_go_json
from ..snapshot import SnapshotError
from .archive import placeholders
from .errors import Conflict, EngineError, InvalidParameter
from .images import tag_reference
from .timefmt import rfc3339_now

_CHUNK = 1 << 20

# The instructions `docker commit --change` and `docker import --change` accept.
_CHANGE_COMMANDS = frozenset({"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD",
                              "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"})


class CommitService:
    def __init__(self, engine: Any) -> None:
        self.options = engine.options
        self.containers = engine.containers
        self.snapshots = engine.snapshots
        self.images = engine.images
        self.events = engine.events

    # -- docker commit ----------------------------------------------------------------------

    def commit(self, ref: str, repo: str = "", tag: str = "", comment: str = "",
               author: str = "", changes: list[str] | None = None, pause: bool = True,
               config: dict[str, Any] | None = None) -> str:
        record = self.containers.store.get(ref)
        container_id = record["Id"]
        name = _image_name(repo, tag)
        new_config = apply_changes(dict(config or {}), changes or [])
        merged = _commit_merge(new_config, record["Config"])
        parent_target = record.get("ImageTarget") or ""
        try:
            parent = self.images.resolve(parent_target)
        except (KeyError, EngineError):
            raise Conflict(f"the image of container {container_id[:12]} no longer exists") \
                from None
        parent_raw = json.loads(self.images.content.read_bytes(parent.config.digest))
        paused_here = False
        if pause and record["State"]["Running"] and not record["State"]["Paused"]:
            try:
                self.containers.pause(container_id)
                paused_here = True
            except EngineError:
                pass  # no freezer: commit the running container as it is
        with tempfile.TemporaryFile(dir=self.options.data_root) as raw, \
                tempfile.TemporaryFile(dir=self.options.data_root) as layer:
            try:
                hidden = placeholders(self.snapshots, container_id)
                _spool(self.snapshots.diff(container_id), raw)
                raw.seek(0)
                diff_id, size, empty = _spool(_filtered_tar(raw, hidden), layer)
            except SnapshotError as e:
                raise EngineError(f"reading the container's changes: {e}") from None
            finally:
                if paused_here:
                    try:
                        self.containers.unpause(container_id)
                    except EngineError:
                        pass
            now = rfc3339_now()
            history_entry: dict[str, Any] = {"created": now}
            if author:
                history_entry["author"] = author
            history_entry["created_by"] = " ".join(record["Config"].get("Cmd") or [])
            if comment:
                history_entry["comment"] = comment
            if empty:
                history_entry["empty_layer"] = True
            diff_ids = list((parent_raw.get("rootfs") or {}).get("diff_ids") or [])
            layers = list(parent.layers)
            if not empty:
                diff_ids.append(diff_id)
                layer.seek(0)
                digest, _ = self.images.content.ingest(layer, diff_id, size)
                layers.append(Descriptor(mediatypes.OCI_LAYER, digest, size))
            doc: dict[str, Any] = {"created": now}
            if author:
                doc["author"] = author
            for key in ("architecture", "os", "os.version", "variant"):
                if parent_raw.get(key):
                    doc[key] = parent_raw[key]
            if comment:
                doc["comment"] = comment
            doc["config"] = _image_config_section(merged)
            doc["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
            doc["history"] = list(parent_raw.get("history") or []) + [history_entry]
        image_id = self._register(doc, layers, name)
        self.events.emit("container", "commit", container_id,
                         {"name": record["Name"].lstrip("/"), "comment": comment,
                          "imageID": image_id, "imageRef": name or ""})
        return image_id

    # -- docker import ----------------------------------------------------------------------

    def import_image(self, source: IO[bytes], repo: str = "", tag: str = "",
                     message: str = "", changes: list[str] | None = None,
                     platform: str = "", src: str = "-") -> str:
        name = _image_name(repo, tag)
        try:
            wanted: Platform = parse_platform(platform) if platform else host_platform()
        except ImageError as e:
            raise InvalidParameter(str(e)) from None
        config = apply_changes({}, changes or [])
        with tempfile.TemporaryFile(dir=self.options.data_root) as layer:
            try:
                diff_id, size, _ = _spool(_decompressed_chunks(source), layer)
                layer.seek(0)
                with tarfile.open(fileobj=layer, mode="r:") as check:
                    for _member in check:
                        pass
            except (tarfile.TarError, OSError, *corrupt_data_errors()) as e:
                raise InvalidParameter(f"importing: not a tar archive: {e}") from None
            layer.seek(0)
            digest, _ = self.images.content.ingest(layer, diff_id, size)
        now = rfc3339_now()
        comment = message or f"Imported from {src}"
        doc: dict[str, Any] = {"created": now, "architecture": wanted.architecture,
                               "os": wanted.os}
        if wanted.variant:
            doc["variant"] = wanted.variant
        doc.update(comment=comment, config=_image_config_section(config),
                   rootfs={"type": "layers", "diff_ids": [diff_id]},
                   history=[{"created": now, "comment": comment}])
        image_id = self._register(doc, [Descriptor(mediatypes.OCI_LAYER, digest, size)], name)
        self.events.emit("image", "import", image_id, {"name": image_id})
        return image_id

    # -- adding an image ----------------------------------------------------------------------

    def _register(self, config_doc: dict[str, Any], layers: list[Descriptor],
                  name: str | None, parent: str = "") -> str:
        """Store config and manifest; add the image (and its name) to the image service.
        parent: the image ID a build step started from."""
        config_bytes = to_go_json(config_doc)
        config = describe(config_bytes, mediatypes.OCI_CONFIG)
        self.images.content.ingest(config_bytes, str(config.digest))
        manifest_bytes = build_manifest(config, layers)
        manifest = describe(manifest_bytes, mediatypes.OCI_MANIFEST)
        self.images.content.ingest(manifest_bytes, str(manifest.digest))
        self.images.add(manifest, name, parent=parent)
        if name:
            self.events.emit("image", "tag", str(config.digest),
                             {"name": parse_reference(name).familiar()})
        return str(config.digest)

# -- layers -----------------------------------------------------------------------------------


def _spool(chunks: Any, out: IO[bytes]) -> tuple[str, int, bool]:
    """Write an uncompressed tar stream to out: (sha256 digest, size, has no entries)."""
    hasher = hashlib.sha256()
    size = 0
    head = b""
    for chunk in chunks:
        if len(head) < 512:
            head += chunk[:512 - len(head)]
        hasher.update(chunk)
        out.write(chunk)
        size += len(chunk)
    out.flush()
    return f"sha256:{hasher.hexdigest()}", size, not head.strip(b"\0")


def _filtered_tar(source: IO[bytes], hidden: set[str]) -> Iterator[bytes]:
    """The tar read from source without the members named in hidden, as chunks."""
    chunks: list[bytes] = []

    class _Sink:
        def write(self, data: bytes) -> int:
            chunks.append(bytes(data))
            return len(data)

    with tarfile.open(fileobj=source, mode="r:") as reader, \
            tarfile.open(fileobj=_Sink(), mode="w|", format=tarfile.PAX_FORMAT) as writer:  # type: ignore[call-overload]
        for member in reader:
            if posixpath.normpath("/" + member.name).lstrip("/") in hidden:
                continue
            data = reader.extractfile(member) if member.isreg() else None
            writer.addfile(member, data)
            yield from chunks
            chunks.clear()
    yield from chunks


def _decompressed_chunks(source: IO[bytes]) -> Iterator[bytes]:
    """A tar stream, plain or compressed (gzip, zstd, bzip2, xz), uncompressed."""
    reader, _kind = open_decompressed(source)
    while True:
        chunk = reader.read(_CHUNK)
        if not chunk:
            return
        yield chunk


# -- image configs ----------------------------------------------------------------------------


def _image_name(repo: str, tag: str) -> str | None:
    if not repo:
        if tag:
            raise InvalidParameter("a tag needs a repository")
        return None
    return tag_reference(repo, tag)


_CONFIG_KEYS = ("User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Healthcheck",
                "ArgsEscaped", "Volumes", "WorkingDir", "Labels", "OnBuild", "StopSignal",
                "Shell")


def _image_config_section(config: dict[str, Any]) -> dict[str, Any]:
    """The image config's "config": the fields an image carries, empty ones left out."""
    return {key: config[key] for key in _CONFIG_KEYS
            if config.get(key) not in (None, "", {}, []) or key in ("Env", "Cmd")
            and config.get(key) is not None}


def _commit_merge(user: dict[str, Any], container: dict[str, Any]) -> dict[str, Any]:
    """moby's daemon/commit.go merge(): what the commit set, the container's for the rest."""
    merged = dict(user)
    if not merged.get("User"):
        merged["User"] = container.get("User") or ""
    ports = dict(container.get("ExposedPorts") or {})
    ports.update(merged.get("ExposedPorts") or {})
    merged["ExposedPorts"] = ports or None
    env = list(merged.get("Env") or [])
    keys = {item.split("=", 1)[0] for item in env}
    merged["Env"] = env + [item for item in container.get("Env") or []
                           if item.split("=", 1)[0] not in keys]
    labels = dict(container.get("Labels") or {})
    labels.update(merged.get("Labels") or {})
    merged["Labels"] = labels or None
    if not merged.get("Entrypoint"):
        if not merged.get("Cmd"):
            merged["Cmd"] = container.get("Cmd")
        if merged.get("Entrypoint") is None:
            merged["Entrypoint"] = container.get("Entrypoint")
    for key in ("Healthcheck", "WorkingDir", "StopSignal", "Shell", "OnBuild"):
        if not merged.get(key):
            merged[key] = container.get(key)
    volumes = dict(container.get("Volumes") or {})
    volumes.update(merged.get("Volumes") or {})
    merged["Volumes"] = volumes or None
    return merged


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Dockerfile instructions (`--change 'CMD ["sh"]'`) applied to a container config."""
    for change in changes:
        for line in change.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            command, _, rest = line.partition(" ")
            command = command.upper()
            rest = rest.strip()
            if command not in _CHANGE_COMMANDS:
                raise InvalidParameter(f"{command.lower()} is not a valid change command")
            _apply_change(config, command, rest)
    return config


def _json_or_shell(rest: str, config: dict[str, Any]) -> list[str]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
    shell = list(config.get("Shell") or ["/bin/sh", "-c"])
    return [*shell, rest]


def _pairs(rest: str, what: str) -> list[tuple[str, str]]:
    try:
        words = shlex.split(rest)
    except ValueError as e:
        raise InvalidParameter(f"{what}: {e}") from None
    if words and "=" not in words[0]:
        # The old form: ENV key value with spaces.
        key, _, value = rest.partition(" ")
        return [(key, " ".join(shlex.split(value.strip())) if value.strip() else "")]
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidParameter(f"{what} names can not be blank")
        pairs.append((key, value))
    return pairs


def _apply_change(config: dict[str, Any], command: str, rest: str) -> None:
    if command == "CMD":
        config["Cmd"] = _json_or_shell(rest, config)
    elif command == "ENTRYPOINT":
        config["Entrypoint"] = _json_or_shell(rest, config)
        config.setdefault("Cmd", None)
    elif command == "ENV":
        env = list(config.get("Env") or [])
        for key, value in _pairs(rest, "ENV"):
            env = [item for item in env if item.split("=", 1)[0] != key] + [f"{key}={value}"]
        config["Env"] = env
    elif command == "LABEL":
        labels = dict(config.get("Labels") or {})
        labels.update(_pairs(rest, "LABEL"))
        config["Labels"] = labels
    elif command == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for port in rest.split():
            ports[port if "/" in port else f"{port}/tcp"] = {}
        config["ExposedPorts"] = ports
    elif command == "VOLUME":
        volumes = dict(config.get("Volumes") or {})
        paths = json.loads(rest) if rest.startswith("[") else rest.split()
        volumes.update(dict.fromkeys(paths, {}))
        config["Volumes"] = volumes
    elif command == "WORKDIR":
        current = config.get("WorkingDir") or "/"
        config["WorkingDir"] = posixpath.normpath(posixpath.join(current, rest))
    elif command == "USER":
        config["User"] = rest
    elif command == "STOPSIGNAL":
        config["StopSignal"] = rest
    elif command == "ONBUILD":
        config["OnBuild"] = list(config.get("OnBuild") or []) + [rest]
