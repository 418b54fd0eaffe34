"""Descriptors, image manifests and indexes (OCI and Docker schema 2), and platform selection.

Documents are parsed into small frozen objects after checking every field's type; a bad
document raises ManifestError naming the field. Documents this engine writes are
serialised as Go's encoding/json would (field order, compact, HTML-safe escapes), so that
a manifest synthesised here has the digest Docker/containerd would give it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dockyard.image import _fields as fields
from dockyard.image import mediatypes
from dockyard.image.digest import Digest, sha256_of
from dockyard.image.errors import ManifestError, NoMatchingPlatformError
from dockyard.image.platform import Platform, host_platform, only, only_strict


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a blob is, its digest and size, and where it runs."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON form, keys in the order of Go's ocispec.Descriptor."""
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest),
                               "size": self.size}
        if self.urls:
            doc["urls"] = list(self.urls)
        if self.annotations:
            doc["annotations"] = dict(sorted(self.annotations.items()))  # Go sorts map keys
        if self.platform is not None:
            doc["platform"] = self.platform.to_json()
        if self.artifact_type:
            doc["artifactType"] = self.artifact_type
        return doc


@dataclass(frozen=True)
class Manifest:
    """An image manifest: one config and its layers (bottom first)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = ""  # the document's own mediaType field ("" when absent, as OCI allows)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    subject: Descriptor | None = None
    artifact_type: str = ""


@dataclass(frozen=True)
class Index:
    """An image index / manifest list: one manifest (or nested index) per platform."""

    manifests: tuple[Descriptor, ...]
    media_type: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    subject: Descriptor | None = None


def parse_descriptor(doc: Any, where: str) -> Descriptor:
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}: expected an object")
    size = fields.integer(doc, "size", where, required=True)
    if size < 0:
        raise ManifestError(f"{fields.join(where, 'size')}: must not be negative")
    platform_doc = fields.obj(doc, "platform", where)
    platform = (Platform.from_json(platform_doc, fields.join(where, "platform"))
                if platform_doc is not None else None)
    return Descriptor(
        media_type=fields.string(doc, "mediaType", where, required=True),
        digest=fields.digest(doc, "digest", where),
        size=size,
        annotations=fields.string_map(doc, "annotations", where),
        platform=platform,
        urls=fields.strings(doc, "urls", where) or (),
        artifact_type=fields.string(doc, "artifactType", where),
    )


def _check_header(doc: fields.JSONObject, what: str, allowed: frozenset[str],
                  expected: str | None) -> str:
    if doc.get("schemaVersion") == 1 or "fsLayers" in doc:
        raise ManifestError(f"{what}: Docker schema 1 manifests are not supported")
    version = fields.integer(doc, "schemaVersion", what, required=True)
    if version != 2:
        raise ManifestError(f"{what}: schemaVersion: expected 2, got {version}")
    media_type = fields.string(doc, "mediaType", what)
    if media_type and media_type not in allowed:
        raise ManifestError(f"{what}: mediaType: unexpected {media_type!r}")
    # The document and the descriptor that pointed at it must agree (OCI requires it).
    if media_type and expected and media_type != expected:
        raise ManifestError(
            f"{what}: mediaType {media_type!r} does not match the descriptor's {expected!r}")
    return media_type


def _subject(doc: fields.JSONObject, what: str) -> Descriptor | None:
    if doc.get("subject") is None:
        return None
    return parse_descriptor(doc["subject"], fields.join(what, "subject"))


def parse_manifest(data: bytes, media_type: str | None = None,
                   what: str = "manifest") -> Manifest:
    """Parse an image manifest; `media_type` is the descriptor's, checked if given."""
    doc = fields.load_object(data, what)
    own_type = _check_header(doc, what, mediatypes.MANIFEST_TYPES, media_type)
    if "manifests" in doc:
        raise ManifestError(f"{what}: is an index, not a manifest")
    config_doc = fields.obj(doc, "config", what, required=True)
    layers_doc = fields.array(doc, "layers", what, required=True)
    assert config_doc is not None and layers_doc is not None
    layers_where = fields.join(what, "layers")
    return Manifest(
        config=parse_descriptor(config_doc, fields.join(what, "config")),
        layers=tuple(parse_descriptor(item, fields.join(layers_where, i))
                     for i, item in enumerate(layers_doc)),
        media_type=own_type,
        annotations=fields.string_map(doc, "annotations", what),
        subject=_subject(doc, what),
        artifact_type=fields.string(doc, "artifactType", what),
    )


def parse_index(data: bytes, media_type: str | None = None, what: str = "index") -> Index:
    """Parse an image index or Docker manifest list."""
    doc = fields.load_object(data, what)
    own_type = _check_header(doc, what, mediatypes.INDEX_TYPES, media_type)
    manifests_doc = fields.array(doc, "manifests", what, required=True)
    assert manifests_doc is not None
    where = fields.join(what, "manifests")
    return Index(
        manifests=tuple(parse_descriptor(item, fields.join(where, i))
                        for i, item in enumerate(manifests_doc)),
        media_type=own_type,
        annotations=fields.string_map(doc, "annotations", what),
        subject=_subject(doc, what),
    )


def document_kind(data: bytes, media_type: str = "") -> str:
    """"index" or "manifest": from the media type when known, else from the fields
    (containerd's sniffing, for descriptors whose media type is missing or generic)."""
    if mediatypes.is_index(media_type):
        return "index"
    if mediatypes.is_manifest(media_type):
        return "manifest"
    doc = fields.load_object(data, "document")
    own = doc.get("mediaType")
    if isinstance(own, str) and (mediatypes.is_index(own) or mediatypes.is_manifest(own)):
        return "index" if mediatypes.is_index(own) else "manifest"
    if "manifests" in doc:
        return "index"
    if "config" in doc and "layers" in doc:
        return "manifest"
    raise ManifestError(f"document of media type {media_type!r} is neither a manifest nor "
                        "an index")


def to_go_json(doc: Any) -> bytes:
    """Serialise as Go's json.Marshal does: compact, UTF-8, with <, > and & escaped."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text.encode()


def build_manifest(config: Descriptor, layers: Sequence[Descriptor],
                   media_type: str = mediatypes.OCI_MANIFEST,
                   annotations: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a new image manifest (field order of Go's ocispec.Manifest)."""
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type,
                           "config": config.to_json(),
                           "layers": [layer.to_json() for layer in layers]}
    if annotations:
        doc["annotations"] = dict(sorted(annotations.items()))
    return to_go_json(doc)


def build_index(manifests: Iterable[Descriptor],
                media_type: str = mediatypes.OCI_INDEX) -> bytes:
    """The bytes of a new image index (field order of Go's ocispec.Index)."""
    return to_go_json({"schemaVersion": 2, "mediaType": media_type,
                       "manifests": [m.to_json() for m in manifests]})


def describe(data: bytes, media_type: str, **extra: Any) -> Descriptor:
    """A descriptor for `data` (digest and size computed)."""
    return Descriptor(media_type, sha256_of(data), len(data), **extra)


def select_manifest(index: Index, platform: Platform | None = None, *,
                    strict: bool = False) -> Descriptor:
    """The manifest of `index` that best fits `platform` (the host's by default).

    containerd's rules (images.Manifest with platforms.Only): candidates are the
    entries whose platform matches, best first in the matcher's order (the exact
    platform, then what it can also run), entries without a platform last; ties keep
    index order. `strict` uses platforms.OnlyStrict (no fallbacks such as amd64 -> 386).
    An entry without a platform can only be confirmed against its config by the caller.
    """
    wanted = platform if platform is not None else host_platform()
    matcher = only_strict(wanted) if strict else only(wanted)
    ranked: list[tuple[float, int, Descriptor]] = []
    for position, descriptor in enumerate(index.manifests):
        if not (mediatypes.is_manifest(descriptor.media_type)
                or mediatypes.is_index(descriptor.media_type)):
            continue
        if descriptor.platform is None:
            ranked.append((float("inf"), position, descriptor))
            continue
        rank = matcher.rank(descriptor.platform)
        if rank is not None:
            ranked.append((rank, position, descriptor))
    if not ranked:
        available = ", ".join(str(d.platform) for d in index.manifests
                              if d.platform is not None) or "none"
        raise NoMatchingPlatformError(
            f"no matching manifest for {wanted} in the manifest list entries "
            f"(available: {available})")
    return min(ranked, key=lambda item: (item[0], item[1]))[2]
