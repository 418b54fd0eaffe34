"""Garbage collection: mark every blob a manifest of any repository references, sweep the
rest. Like distribution's, it is meant for a registry that is not taking pushes: a blob
uploaded but not yet referenced by a manifest counts as garbage."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.image import mediatypes
from dockyard.image.digest import Digest

from ._storage import RegistryStorage


@dataclass
class GcReport:
    marked: int = 0
    removed: list[Digest] = field(default_factory=list)
    freed: int = 0   # bytes
    untagged: list[tuple[str, Digest]] = field(default_factory=list)  # (repository, digest)


def _references(data: bytes, media_type: str) -> list[Digest]:
    """The digests a manifest or index holds on to (its subject is not one of them)."""
    try:
        doc = json.loads(data)
    except ValueError:
        return []
    descriptors = []
    if mediatypes.is_index(media_type):
        descriptors = doc.get("manifests") or []
    else:
        descriptors = [doc.get("config")] + list(doc.get("layers") or [])
    found = []
    for descriptor in descriptors:
        try:
            found.append(Digest(descriptor["digest"]))
        except (TypeError, KeyError, ValueError):
            continue
    return found


def _untagged(storage: RegistryStorage, name: str) -> list[Digest]:
    """The manifests of `name` no tag reaches: not tagged, not a child of a reached index,
    not a referrer of a reached manifest."""
    manifests = dict(storage.manifests(name))
    reached: set[Digest] = set()
    pending = [digest for tag in storage.tags(name)
               if (digest := storage.resolve_tag(name, tag)) is not None]
    while pending:
        digest = pending.pop()
        if digest in reached or digest not in manifests:
            continue
        reached.add(digest)
        if mediatypes.is_index(manifests[digest]):
            try:
                pending.extend(_references(storage.blob_path(digest).read_bytes(),
                                           manifests[digest]))
            except FileNotFoundError:
                pass
        for referrer in storage.referrers(name, digest):
            try:
                pending.append(Digest(referrer.get("digest", "")))
            except ValueError:
                continue
    return sorted(digest for digest in manifests if digest not in reached)


def garbage_collect(root: Path, dry_run: bool = False,
                    delete_untagged: bool = False) -> GcReport:
    """Remove (or with `dry_run` only list) the blobs no manifest references; with
    `delete_untagged`, first the manifests no tag reaches."""
    storage = RegistryStorage(root)
    report = GcReport()
    marked: set[Digest] = set()
    for name in storage.repositories():
        dropped = set(_untagged(storage, name)) if delete_untagged else set()
        for digest in sorted(dropped):
            report.untagged.append((name, digest))
            if not dry_run:
                storage.delete_manifest(name, digest)
        for digest, media_type in storage.manifests(name):
            if digest in dropped:
                continue
            marked.add(digest)
            try:
                data = storage.blob_path(digest).read_bytes()
            except FileNotFoundError:
                continue
            marked.update(_references(data, media_type))
    report.marked = len(marked)
    for digest in sorted(storage.blobs.digests()):
        if digest in marked:
            continue
        report.removed.append(digest)
        report.freed += storage.blob_size(digest) or 0
        if not dry_run:
            storage.blobs.delete(digest)
    if not dry_run:
        removed = set(report.removed)
        for name in storage.repositories():
            for path, digest in list(storage.linked_blobs(name)):
                if digest in removed:
                    path.unlink(missing_ok=True)
    return report
