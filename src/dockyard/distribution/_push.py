"""Pushing one image: the blobs of each platform manifest (existence check, then a
cross-repository mount when the blob is known to be in another repository of the same
registry, else an upload), the manifests, and the index last, each under the tag.

The stored bytes are pushed as they are, so the digests the registry gives are the ones
the image has here (RepoDigests stay true)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from ..image import ContentStore, Descriptor, Digest, mediatypes, parse_index, parse_manifest
from ._client import RegistryClient
from ._requests import blob_exists, put_manifest, start_upload, upload_blob

MAX_CONCURRENT_UPLOADS = 5  # dockerd's default (--max-concurrent-uploads)
_PROGRESS_STEP = 512 << 10


class PushHandler(Protocol):
    def progress(self, layer_id: str, status: str, current: int = -1,
                 total: int = -1) -> None: ...


@dataclass(frozen=True)
class PushedImage:
    digest: Digest
    size: int


def push(client: RegistryClient, repository: str, tag: str, store: ContentStore,
         target: Descriptor, manifests: list[tuple[Descriptor, tuple[str, ...]]],
         handler: PushHandler, mount_sources: Callable[[str], list[str]],
         chunk_size: int = 0) -> PushedImage:
    """Push `target` (a manifest, or an index whose present platform manifests are
    `manifests`) as repository:tag. Each manifest comes with the progress IDs of its
    layers (Docker shows the diff ID). `mount_sources(digest)` names other repositories
    of this registry that hold the blob."""
    done: set[str] = set()
    for descriptor, layer_ids in manifests:
        manifest_bytes = store.read_bytes(descriptor.digest)
        manifest = parse_manifest(manifest_bytes, descriptor.media_type,
                                  f"manifest {descriptor.digest}")
        layers = [(layer, layer_ids[i] if i < len(layer_ids) else layer.digest[7:19])
                  for i, layer in enumerate(manifest.layers)
                  if str(layer.digest) not in done and store.has(layer.digest)]
        for _, layer_id in reversed(layers):  # Docker lists the top layer first
            handler.progress(layer_id, "Preparing")
        with ThreadPoolExecutor(max_workers=MAX_CONCURRENT_UPLOADS,
                                thread_name_prefix="push") as pool:
            futures = [pool.submit(_push_blob, client, repository, store, layer, layer_id,
                                   handler, mount_sources, chunk_size)
                       for layer, layer_id in reversed(layers)]
            futures.append(pool.submit(_push_blob, client, repository, store,
                                       manifest.config, "", None, mount_sources, chunk_size))
            for future in futures:
                future.result()
        done.update(str(layer.digest) for layer, _ in layers)
        if descriptor.digest != target.digest:
            put_manifest(client, repository, str(descriptor.digest), manifest_bytes,
                         descriptor.media_type or mediatypes.OCI_MANIFEST)
    target_bytes = store.read_bytes(target.digest)
    if mediatypes.is_index(target.media_type):
        parse_index(target_bytes, target.media_type, f"index {target.digest}")
    digest = put_manifest(client, repository, tag or str(target.digest), target_bytes,
                          target.media_type)
    return PushedImage(digest, len(target_bytes))


def _push_blob(client: RegistryClient, repository: str, store: ContentStore,
               blob: Descriptor, layer_id: str, handler: PushHandler | None,
               mount_sources: Callable[[str], list[str]], chunk_size: int) -> None:
    digest = str(blob.digest)

    def say(status: str, current: int = -1, total: int = -1) -> None:
        if handler is not None:
            handler.progress(layer_id, status, current, total)

    if blob_exists(client, repository, digest):
        say("Layer already exists")
        return
    location = None
    for source in mount_sources(digest):
        if source == repository:
            continue
        location = start_upload(client, repository, mount=digest, mount_from=source)
        if location is None:
            say(f"Mounted from {source}")
            return
        break  # the registry opened an upload instead: use it
    if location is None:
        location = start_upload(client, repository)
    size = store.size(digest)
    reported = [0]

    def pushing(sent: int) -> None:
        if sent - reported[0] >= _PROGRESS_STEP or sent == size:
            reported[0] = sent
            say("Pushing", sent, size)

    say("Pushing", 0, size)
    upload_blob(client, repository, location, digest, size,
                lambda: store.open(digest, verify=True), pushing, chunk_size)
    say("Pushed")
