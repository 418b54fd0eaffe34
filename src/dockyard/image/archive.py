"""Loading and saving image archives (`docker load` / `docker save`).

`load_archive` reads, in one streaming pass, the legacy docker-archive layout, the OCI
image layout, or Docker 25+'s combination of both, optionally compressed as a whole
(gzip, zstd, xz, bzip2). Every blob is verified against its digest, every legacy layer
against its config's diff_id. It either returns every image of the archive, with all
their blobs in the content store, or raises ArchiveError and leaves the store as it was:
the blobs this load added are deleted again (so are blobs the archive carried that no
image uses). Layers are not unpacked (the snapshot layer does that) and the diff_ids of
compressed layers are checked when they are unpacked.

Caveat for the engine: rolling back deletes the blobs *this load* created. A concurrent
operation that found such a blob already present and relies on it (a second load of the
same image, a pull) would lose it; the engine serialises loads, pulls and garbage
collection of the store (containerd's leases solve the same problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from typing import IO

from dockyard.image import _archive_load, _archive_writer
from dockyard.image._archive_reader import read_archive
from dockyard.image.content import ContentStore, Readable
from dockyard.image.digest import Digest
from dockyard.image.errors import (
    ArchiveError,
    BlobNotFoundError,
    DigestMismatchError,
    ManifestError,
    ReferenceError,
)
from dockyard.image.manifest import Descriptor
from dockyard.image.platform import Platform
from dockyard.image.reference import Reference
from dockyard.image.resolve import ResolvedImage, resolve_image


@dataclass(frozen=True)
class LoadedImage(ResolvedImage):
    """An image read from an archive: the resolved image and the names the archive gives
    it (normalised, tagged: docker.io/library/busybox:latest)."""

    repo_tags: tuple[Reference, ...] = ()

    @property
    def manifest_digest(self) -> Digest:
        return self.manifest.digest


@dataclass(frozen=True)
class SaveImage:
    """What to save: the target a name points to (manifest or index, in the store), the
    names to record, and, for an index, which platform manifest.json should list."""

    target: Descriptor
    names: tuple[Reference, ...] = ()
    platform: Platform | None = None

    @classmethod
    def from_loaded(cls, image: LoadedImage) -> SaveImage:
        return cls(image.target, image.repo_tags, image.platform)


def load_archive(fileobj: Readable, store: ContentStore, *,
                 platform: Platform | None = None) -> list[LoadedImage]:
    """Load every image of the archive read from `fileobj` into `store`.

    For a multi-platform image, the manifest for `platform` (the host's by default) is
    chosen; all platforms present in the archive are stored. Raises ArchiveError (a
    ValueError) naming the member at fault, or NoMatchingPlatformError if an explicit
    `platform` is not in the archive; nothing is left behind in either case.
    """
    added: set[Digest] = set()
    try:
        contents = read_archive(fileobj, store, added)
        if contents.resolve("index.json") is not None:
            named = _archive_load.load_oci(contents, store, platform)
        elif contents.resolve("manifest.json") is not None:
            named = _archive_load.load_legacy(contents, store, added)
        else:
            raise ArchiveError("not an image archive: neither index.json nor manifest.json "
                               "found")
        keep = {digest for image, _ in named for digest in image.blobs}
        for digest in added - keep:
            store.delete(digest)
        return [_loaded(image, names) for image, names in named]
    except BlobNotFoundError as error:
        _rollback(store, added)
        raise ArchiveError(f"{error.what} {error.digest} is missing from the archive (member "
                           f"blobs/{error.digest.replace(':', '/')})") from None
    except (ManifestError, DigestMismatchError, ReferenceError) as error:
        _rollback(store, added)
        raise ArchiveError(str(error)) from None
    except BaseException:
        _rollback(store, added)
        raise


def _rollback(store: ContentStore, added: set[Digest]) -> None:
    for digest in added:
        store.delete(digest)


def _loaded(image: ResolvedImage, names: list[Reference]) -> LoadedImage:
    values = {f.name: getattr(image, f.name) for f in dataclass_fields(ResolvedImage)}
    return LoadedImage(**values, repo_tags=tuple(dict.fromkeys(names)))


def save_archive(images: Sequence[SaveImage], fileobj: IO[bytes],
                 store: ContentStore) -> None:
    """Write `images` to `fileobj` in Docker 25+'s `docker save` format (see
    _archive_writer). Every blob is verified as it is written; on an error the output is
    incomplete and the caller discards it. Raises BlobNotFoundError if the store lacks a
    blob an image needs."""
    resolved = [(resolve_image(store, image.target, image.platform), image.names)
                for image in images]
    _archive_writer.write_archive(resolved, fileobj, store)
