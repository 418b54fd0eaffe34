"""The image layer: references, manifests and indexes, platforms, the content store,
and image archives (`docker save` / `docker load`).

This is the interface the engine uses; the modules prefixed with `_` are private. The
layer knows nothing of the API above it, and does no HTTP (distribution/ pulls and
pushes) and no unpacking of layers (snapshot/ does that).
"""

from __future__ import annotations

from dockyard.image import mediatypes
from dockyard.image.archive import LoadedImage, SaveImage, load_archive, save_archive
from dockyard.image.config import (
    ContainerConfig,
    Healthcheck,
    HistoryEntry,
    ImageConfig,
    chain_ids,
    image_id,
    parse_config,
)
from dockyard.image.content import ContentStore
from dockyard.image.digest import Digest, parse_digest, sha256_of
from dockyard.image.errors import (
    ArchiveError,
    BlobNotFoundError,
    DigestError,
    DigestMismatchError,
    ImageError,
    ManifestError,
    NoMatchingPlatformError,
    PlatformError,
    ReferenceError,
)
from dockyard.image.manifest import (
    Descriptor,
    Index,
    Manifest,
    build_index,
    build_manifest,
    describe,
    document_kind,
    parse_descriptor,
    parse_index,
    parse_manifest,
    select_manifest,
)
from dockyard.image.platform import (
    Platform,
    PlatformMatcher,
    host_platform,
    normalize_arch,
    normalize_os,
    normalize_platform,
    only,
    only_strict,
    parse_platform,
)
from dockyard.image.reference import Reference, is_image_id_like, parse_reference
from dockyard.image.resolve import ResolvedImage, resolve_image

__all__ = [
    "ArchiveError",
    "BlobNotFoundError",
    "ContainerConfig",
    "ContentStore",
    "Descriptor",
    "Digest",
    "DigestError",
    "DigestMismatchError",
    "Healthcheck",
    "HistoryEntry",
    "ImageConfig",
    "ImageError",
    "Index",
    "LoadedImage",
    "Manifest",
    "ManifestError",
    "NoMatchingPlatformError",
    "Platform",
    "PlatformError",
    "PlatformMatcher",
    "Reference",
    "ReferenceError",
    "ResolvedImage",
    "SaveImage",
    "build_index",
    "build_manifest",
    "chain_ids",
    "describe",
    "document_kind",
    "host_platform",
    "image_id",
    "is_image_id_like",
    "load_archive",
    "mediatypes",
    "normalize_arch",
    "normalize_os",
    "normalize_platform",
    "only",
    "only_strict",
    "parse_config",
    "parse_descriptor",
    "parse_digest",
    "parse_index",
    "parse_manifest",
    "parse_platform",
    "parse_reference",
    "resolve_image",
    "save_archive",
    "select_manifest",
    "sha256_of",
]
