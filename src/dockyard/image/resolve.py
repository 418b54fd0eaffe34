"""From a target descriptor (a manifest, or an index of them) to one runnable image.

`resolve_image` walks the graph an image name points to, checking every document it
reads and that every blob it needs is there with the size its descriptor says, and
picks the platform manifest to run. The same walk serves loading (blobs must be in the
archive), saving and, later, running and pulling (blobs must be in the store).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from dockyard.image import mediatypes
from dockyard.image.config import ImageConfig, parse_config
from dockyard.image.content import ContentStore
from dockyard.image.digest import Digest
from dockyard.image.errors import (
    BlobNotFoundError,
    DigestMismatchError,
    ManifestError,
    NoMatchingPlatformError,
)
from dockyard.image.manifest import (
    Descriptor,
    Index,
    Manifest,
    document_kind,
    parse_index,
    parse_manifest,
    select_manifest,
)
from dockyard.image.platform import Platform

MAX_DOCUMENT_SIZE = 16 << 20  # manifests, indexes and configs are read into memory
_MAX_INDEX_DEPTH = 8
# buildkit stores provenance/SBOM attestations as manifests in the index; not runnable.
_REFERENCE_TYPE = "vnd.docker.reference.type"

Present = Callable[[Descriptor], bool]


@dataclass(frozen=True)
class ResolvedImage:
    """One image ready to run: the platform manifest chosen, its config and layers."""

    target: Descriptor  # what a name points to: this manifest, or the index holding it
    manifest: Descriptor
    manifest_bytes: bytes
    config: Descriptor
    image_config: ImageConfig
    layers: tuple[Descriptor, ...]
    manifests: tuple[Descriptor, ...]  # every platform manifest of the target that is present
    blobs: tuple[Digest, ...]  # every blob the image holds on to, in walk order

    @property
    def id(self) -> Digest:
        """The image ID, as Docker shows it: the config digest."""
        return self.config.digest

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return self.image_config.diff_ids

    @property
    def platform(self) -> Platform:
        return self.image_config.platform


@dataclass(frozen=True)
class _PlatformImage:
    descriptor: Descriptor
    data: bytes
    manifest: Manifest
    config: ImageConfig


class _Walk:
    def __init__(self, store: ContentStore, present: Present) -> None:
        self.store = store
        self.present = present
        self.blobs: dict[Digest, None] = {}  # insertion-ordered set
        self.images: list[_PlatformImage] = []

    def require(self, descriptor: Descriptor, what: str) -> None:
        if not self.present(descriptor):
            raise BlobNotFoundError(descriptor.digest, what)
        size = self.store.size(descriptor.digest)
        if size != descriptor.size:
            raise DigestMismatchError(f"{what} {descriptor.digest}: size {size} does not match "
                                      f"the descriptor's {descriptor.size}")
        self.blobs[descriptor.digest] = None

    def document(self, descriptor: Descriptor, what: str) -> bytes:
        if descriptor.size > MAX_DOCUMENT_SIZE:
            raise ManifestError(f"{what} {descriptor.digest}: too large ({descriptor.size} "
                                "bytes)")
        self.require(descriptor, what)
        return self.store.read_bytes(descriptor.digest)

    def visit(self, descriptor: Descriptor, what: str, depth: int) -> None:
        data = self.document(descriptor, what)
        if document_kind(data, descriptor.media_type) == "index":
            self.visit_index(descriptor, data, what, depth)
        else:
            self.visit_manifest(descriptor, data)

    def visit_index(self, descriptor: Descriptor, data: bytes, what: str, depth: int) -> None:
        if depth >= _MAX_INDEX_DEPTH:
            raise ManifestError(f"{what} {descriptor.digest}: indexes nested too deeply")
        index = parse_index(data, _own_type(descriptor), f"index {descriptor.digest}")
        for child in index.manifests:
            # A multi-platform image may be saved or pulled for some platforms only
            # ("sparse" index): a child whose manifest is absent is skipped, but a child
            # that is there must be complete.
            if not (mediatypes.is_manifest(child.media_type)
                    or mediatypes.is_index(child.media_type)) or not self.present(child):
                continue
            self.visit(child, "manifest", depth + 1)

    def visit_manifest(self, descriptor: Descriptor, data: bytes) -> None:
        where = f"manifest {descriptor.digest}"
        manifest = parse_manifest(data, _own_type(descriptor), where)
        if descriptor.annotations.get(_REFERENCE_TYPE) or not mediatypes.is_config(
                manifest.config.media_type):
            # An attestation or an artifact: keep its blobs that are here, never run it.
            for blob in (manifest.config, *manifest.layers):
                if self.present(blob):
                    self.require(blob, "blob")
            return
        config_bytes = self.document(manifest.config, "config")
        config = parse_config(config_bytes, f"config {manifest.config.digest}")
        if len(config.diff_ids) != len(manifest.layers):
            raise ManifestError(f"{where}: {len(manifest.layers)} layers, but its config lists "
                                f"{len(config.diff_ids)} diff_ids")
        for position, layer in enumerate(manifest.layers):
            if mediatypes.is_foreign_layer(layer.media_type) and not self.present(layer):
                continue  # foreign layers are fetched from their URLs, never shipped
            self.require(layer, f"layer {position}")
        self.images.append(_PlatformImage(descriptor, data, manifest, config))


def _own_type(descriptor: Descriptor) -> str | None:
    media_type = descriptor.media_type
    return media_type if (mediatypes.is_manifest(media_type)
                          or mediatypes.is_index(media_type)) else None


def resolve_image(store: ContentStore, target: Descriptor, platform: Platform | None = None,
                  *, present: Present | None = None, strict: bool = False) -> ResolvedImage:
    """Walk `target` in `store` and choose its manifest for `platform`.

    With `platform` None the host's platform is preferred, and an image for another
    platform is still returned if that is all there is (as `docker load` keeps it); an
    explicit `platform` that nothing matches raises NoMatchingPlatformError. `present`
    decides which blobs count as available (default: in the store). Missing blobs raise
    BlobNotFoundError, bad documents ManifestError, wrong sizes DigestMismatchError.
    """
    if present is None:
        def present(descriptor: Descriptor) -> bool:
            return store.has(descriptor.digest)

    walk = _Walk(store, present)
    walk.visit(target, "image", 0)
    if not walk.images:
        raise ManifestError(f"image {target.digest}: no image manifest for any platform is "
                            "present")
    chosen = walk.images[0]
    if len(walk.images) > 1 or platform is not None:
        by_digest = {image.descriptor.digest: image for image in walk.images}
        # Entries without a platform are described by their config (containerd does this).
        index = Index(tuple(
            image.descriptor if image.descriptor.platform is not None
            else replace(image.descriptor, platform=image.config.platform)
            for image in walk.images))
        try:
            chosen = by_digest[select_manifest(index, platform, strict=strict).digest]
        except NoMatchingPlatformError:
            if platform is not None and mediatypes.is_index(target.media_type):
                raise
    return ResolvedImage(
        target=target,
        manifest=chosen.descriptor,
        manifest_bytes=chosen.data,
        config=chosen.manifest.config,
        image_config=chosen.config,
        layers=chosen.manifest.layers,
        manifests=tuple(image.descriptor for image in walk.images),
        blobs=tuple(walk.blobs),
    )
