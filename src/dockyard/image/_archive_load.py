"""Turning what an archive holds into images: the OCI layout and Docker's legacy layout.

- OCI image layout (skopeo, buildah, podman, containerd, Docker 25+): oci-layout,
  index.json and blobs/<alg>/<hex>; names come from the index.json annotations.
- Legacy docker-archive (`docker save` before 25): manifest.json lists each image's
  config file, RepoTags and layer.tar files; layers are stored as uncompressed blobs and
  an OCI manifest is made for them, as Docker 25 does when it saves such an image.
- Docker 25+ writes both; index.json is then the truth and manifest.json adds RepoTags.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
from typing import Any

from dockyard.image import _fields as fields
from dockyard.image import mediatypes
from dockyard.image._archive_reader import ArchiveContents, decompressed
from dockyard.image.config import parse_config
from dockyard.image.content import ContentStore
from dockyard.image.digest import Digest, sha256_of
from dockyard.image.errors import ArchiveError, ReferenceError
from dockyard.image.manifest import Descriptor, build_manifest, parse_index
from dockyard.image.platform import Platform
from dockyard.image.reference import Reference, parse_reference
from dockyard.image.resolve import MAX_DOCUMENT_SIZE, ResolvedImage, resolve_image

_LAYOUT_VERSION = "1.0.0"
# Docker names legacy configs by their digest: "<hex>.json" (or blobs/sha256/<hex> in 25+).
_DIGEST_NAMED = re.compile(r"(?:blobs/sha256/)?([a-f0-9]{64})(?:\.json)?")


# What a loader returns: each image, with the names the archive gives it.
Named = tuple[ResolvedImage, list[Reference]]


def _name(text: str, where: str) -> Reference:
    try:
        return parse_reference(text).with_default_tag()
    except ReferenceError as error:
        raise ArchiveError(f"{where}: {text!r}: {error}") from None


def _names_from_annotations(descriptor: Descriptor, where: str) -> list[Reference]:
    """containerd's and podman's rule: io.containerd.image.name (the full name, which
    Docker 25 writes beside a tag-only ref.name), else ref.name read as a name."""
    full = descriptor.annotations.get(mediatypes.ANNOTATION_IMAGE_NAME)
    if full:
        return [_name(full, f"{where}.annotations[{mediatypes.ANNOTATION_IMAGE_NAME}]")]
    ref_name = descriptor.annotations.get(mediatypes.ANNOTATION_REF_NAME)
    if ref_name:
        return [_name(ref_name, f"{where}.annotations[{mediatypes.ANNOTATION_REF_NAME}]")]
    return []


def _json_array(data: bytes, what: str) -> list[Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise ArchiveError(f"{what}: invalid JSON: {error}") from None
    if not isinstance(value, list):
        raise ArchiveError(f"{what}: expected a JSON array")
    return value


def _repo_tags(entry: fields.JSONObject, where: str) -> list[Reference]:
    tags = []
    for position, text in enumerate(fields.strings(entry, "RepoTags", where) or ()):
        here = f"{where}.RepoTags[{position}]"
        reference = _name(text, here)
        # Docker's loader accepts only name:tag here.
        if reference.digest is not None:
            raise ArchiveError(f"{here}: invalid tag {text!r}")
        tags.append(reference)
    return tags


def load_oci(contents: ArchiveContents, store: ContentStore,
             platform: Platform | None) -> list[Named]:
    if contents.resolve("oci-layout") is not None:
        layout = fields.load_object(contents.read(store, "oci-layout", 1 << 16), "oci-layout")
        version = fields.string(layout, "imageLayoutVersion", "oci-layout", required=True)
        if version != _LAYOUT_VERSION:
            raise ArchiveError(f"oci-layout: unsupported imageLayoutVersion {version!r}")
    index = parse_index(contents.read(store, "index.json", MAX_DOCUMENT_SIZE),
                        what="index.json")
    # Several entries (one per tag) may name the same target: one image, several names.
    targets: dict[Digest, tuple[Descriptor, list[Reference]]] = {}
    for position, descriptor in enumerate(index.manifests):
        names = _names_from_annotations(descriptor, f"index.json: manifests[{position}]")
        plain = Descriptor(descriptor.media_type, descriptor.digest, descriptor.size,
                           platform=descriptor.platform, urls=descriptor.urls)
        targets.setdefault(descriptor.digest, (plain, []))[1].extend(names)

    def in_archive(descriptor: Descriptor) -> bool:
        return descriptor.digest in contents.blobs

    images = [(resolve_image(store, target, platform, present=in_archive), names)
              for target, names in targets.values()]
    if contents.resolve("manifest.json") is not None:
        images = _add_legacy_tags(images, contents, store)
    return images


def _add_legacy_tags(images: list[Named], contents: ArchiveContents,
                     store: ContentStore) -> list[Named]:
    """Docker 25+ archives repeat each image's tags in manifest.json; merge them in."""
    entries = _json_array(contents.read(store, "manifest.json", MAX_DOCUMENT_SIZE),
                          "manifest.json")
    extra: dict[Digest, list[Reference]] = {}
    for position, entry in enumerate(entries):
        where = f"manifest.json[{position}]"
        if not isinstance(entry, dict):
            raise ArchiveError(f"{where}: expected an object")
        config = fields.string(entry, "Config", where, required=True)
        match = _DIGEST_NAMED.fullmatch(config)
        if match is not None:
            extra.setdefault(Digest(f"sha256:{match.group(1)}"), []).extend(
                _repo_tags(entry, where))
    return [(image, [*names, *extra.get(image.config.digest, [])]) for image, names in images]


def load_legacy(contents: ArchiveContents, store: ContentStore,
                added: set[Digest]) -> list[Named]:
    entries = _json_array(contents.read(store, "manifest.json", MAX_DOCUMENT_SIZE),
                          "manifest.json")
    images = []
    for position, entry in enumerate(entries):
        where = f"manifest.json[{position}]"
        if not isinstance(entry, dict):
            raise ArchiveError(f"{where}: expected an object")
        images.append(_load_legacy_image(contents, store, added, entry, where))
    return images


def _load_legacy_image(contents: ArchiveContents, store: ContentStore, added: set[Digest],
                       entry: fields.JSONObject, where: str) -> Named:
    config_path = fields.string(entry, "Config", where, required=True)
    config_bytes = contents.read(store, config_path, MAX_DOCUMENT_SIZE)
    config_digest = sha256_of(config_bytes)
    named = _DIGEST_NAMED.fullmatch(posixpath.basename(config_path))
    if named is not None and named.group(1) != config_digest.hex:
        raise ArchiveError(f"member {config_path}: content is {config_digest}, not what its "
                           "name says")
    config = parse_config(config_bytes, f"member {config_path}")
    layer_paths = fields.strings(entry, "Layers", where) or ()
    if len(layer_paths) != len(config.diff_ids):
        raise ArchiveError(f"{where}.Layers: {len(layer_paths)} layers, but the config lists "
                           f"{len(config.diff_ids)} diff_ids")
    tags = _repo_tags(entry, where)
    digest, size = store.ingest(config_bytes, added=added)
    config_descriptor = Descriptor(mediatypes.OCI_CONFIG, digest, size)
    layers = []
    for position, path in enumerate(layer_paths):
        digest, size = _ingest_layer(contents, store, added, path)
        if digest != config.diff_ids[position]:
            raise ArchiveError(f"member {path}: content is {digest}, but the config's diff_id "
                               f"for layer {position} is {config.diff_ids[position]}")
        layers.append(Descriptor(mediatypes.OCI_LAYER, digest, size))
    manifest_bytes = build_manifest(config_descriptor, layers)
    digest, size = store.ingest(manifest_bytes, added=added)
    target = Descriptor(mediatypes.OCI_MANIFEST, digest, size)
    return resolve_image(store, target), tags


def _ingest_layer(contents: ArchiveContents, store: ContentStore, added: set[Digest],
                  path: str) -> tuple[Digest, int]:
    """Store a legacy layer uncompressed (its digest is then its diff_id); Docker's loader
    also accepts compressed layer files, so they are decompressed here."""
    member = contents.resolve(path)
    if member is None:
        raise ArchiveError(f"member {path} not found in the archive")
    raw = io.BytesIO(member.data) if member.data is not None else store.open(member.digest or "")
    with raw:
        stream, compression = decompressed(raw, f"member {path}")
        if compression is None and member.digest is not None:
            return member.digest, member.size  # stored as it came: already the diff
        return store.ingest(stream, added=added)
