"""Pulling one image: the name resolved to a manifest (through an index for the platform
asked for), then the config, then the layers downloaded in parallel, each unpacked while
it downloads (all at once, into staging), and published in order.

Every blob and document is verified before it is stored; blobs already in the content
store are not downloaded again, which is what makes an interrupted pull resume.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from ..compression import Readable
from ..image import (
    ContentStore,
    Descriptor,
    ImageError,
    Manifest,
    Platform,
    mediatypes,
    parse_index,
    parse_manifest,
    select_manifest,
)
from ._client import RegistryClient
from ._errors import RegistryError
from ._requests import fetch_blob, get_manifest
from ._spool import Spool

MAX_CONCURRENT_DOWNLOADS = 3  # dockerd's default (--max-concurrent-downloads)
# Layers unpacked at once: enough for every download in flight to have its unpacker
# reading it as it comes, and for the small layers to finish meanwhile. A layer whose
# unpacker starts late is read back from the content store (see _spool).
MAX_CONCURRENT_UNPACKS = 6
_PROGRESS_STEP = 512 << 10  # bytes between two "Downloading" messages of a layer
PROGRESS_INTERVAL = 0.1  # seconds between two of them at least (dockerd's rate limit)


class PullHandler(Protocol):
    """What the engine does during a pull: show progress, say which layers it already
    has unpacked, unpack the others: `stage` (concurrently, from several threads) into
    something not visible yet, which `publish` makes visible (in layer order, from the
    pull's thread) or `discard` throws away (the pull failed)."""

    def progress(self, layer_id: str, status: str, current: int = -1,
                 total: int = -1) -> None: ...

    def resolved(self, target: Descriptor, manifest: Descriptor) -> None: ...

    def unpacked(self, config: bytes, layers: tuple[Descriptor, ...]) -> list[bool]: ...

    def stage(self, position: int, layer: Descriptor, stream: Readable,
              progress: Callable[[int], None]) -> object: ...

    def publish(self, position: int, staged: object) -> None: ...

    def discard(self, staged: object) -> None: ...


@dataclass(frozen=True)
class PulledImage:
    target: Descriptor  # what the reference names: a manifest, or the index holding it
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    fetched: bool  # False when every blob was already here ("Image is up to date")


def short_id(digest: str) -> str:
    return digest.partition(":")[2][:12]


def resolve(client: RegistryClient, repository: str, reference: str, store: ContentStore,
            platform: Platform | None) -> tuple[Descriptor, Descriptor, Manifest, bool]:
    """(target, platform manifest descriptor, manifest, anything new stored). Documents
    are stored as they are verified; an index's other platforms are not fetched."""
    data, target = get_manifest(client, repository, reference)
    stored_new = not store.has(target.digest)
    try:
        if mediatypes.is_index(target.media_type):
            index = parse_index(data, target.media_type, f"index {target.digest}")
            chosen = select_manifest(index, platform)
            if mediatypes.is_index(chosen.media_type):
                raise RegistryError(f"index {target.digest}: nested indexes are not supported")
            manifest_bytes, fetched = get_manifest(client, repository, str(chosen.digest))
            if fetched.digest != chosen.digest:
                raise RegistryError(f"manifest verification failed for digest {chosen.digest}")
            manifest = parse_manifest(manifest_bytes, chosen.media_type,
                                      f"manifest {chosen.digest}")
            stored_new |= not store.has(chosen.digest)
            store.ingest(manifest_bytes, chosen.digest, chosen.size)
        else:
            chosen = target
            manifest = parse_manifest(data, target.media_type, f"manifest {target.digest}")
    except ImageError as error:
        raise RegistryError(str(error)) from None
    store.ingest(data, target.digest, target.size)
    return target, chosen, manifest, stored_new


def pull(client: RegistryClient, repository: str, reference: str, store: ContentStore,
         platform: Platform | None, handler: PullHandler) -> PulledImage:
    target, chosen, manifest, fresh = resolve(client, repository, reference, store, platform)
    handler.resolved(target, chosen)
    for layer in manifest.layers:
        if not mediatypes.is_layer(layer.media_type):
            raise RegistryError(f"unsupported layer media type {layer.media_type!r}")
    config = manifest.config
    if not store.has(config.digest):
        fresh = True
        fetch_blob(client, repository, config, store)
    config_bytes = store.read_bytes(config.digest)
    layers = manifest.layers
    unpacked = handler.unpacked(config_bytes, layers)
    in_store = [store.has(layer.digest) for layer in layers]
    # "Already exists" needs the blob too: the image keeps its layers' blobs (push and
    # save send them), so a layer unpacked from another image is still fetched.
    already = [done and kept for done, kept in zip(unpacked, in_store, strict=True)]
    for layer, done in zip(layers, already, strict=True):
        handler.progress(short_id(layer.digest), "Already exists" if done
                         else "Pulling fs layer")
    to_fetch = [i for i in range(len(layers)) if not in_store[i]]
    to_unpack = [i for i in range(len(layers)) if not unpacked[i]]
    fresh |= bool(to_fetch)
    # Layers to unpack are handed over while they download (see _spool).
    spools = {i: Spool() for i in to_fetch if not unpacked[i]}
    failed = threading.Event()
    downloads: dict[int, Future[None]] = {}
    stages: dict[int, Future[object]] = {}
    published: set[int] = set()
    download_pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENT_DOWNLOADS,
                                       thread_name_prefix="pull")
    unpack_pool = ThreadPoolExecutor(
        max_workers=max(1, min(len(to_unpack), MAX_CONCURRENT_UNPACKS)),
        thread_name_prefix="unpack")
    try:
        for position in to_fetch[MAX_CONCURRENT_DOWNLOADS:]:
            # Queued behind the downloads that start now, as dockerd shows them.
            handler.progress(short_id(layers[position].digest), "Waiting")
        for position in to_fetch:
            downloads[position] = download_pool.submit(
                _download, client, repository, layers[position], store, handler, failed,
                spools.get(position))
        for position in to_unpack:
            stages[position] = unpack_pool.submit(
                _stage, position, layers[position], store, handler, downloads.get(position),
                spools.get(position))
        # Unpacking runs concurrently; a layer becomes visible only after the one below.
        for position, layer in enumerate(layers):
            if already[position]:
                continue
            if position in stages:
                staged = stages[position].result()
                published.add(position)
                handler.publish(position, staged)
            elif position in downloads:
                downloads[position].result()
            handler.progress(short_id(layer.digest), "Pull complete")
    except BaseException:
        failed.set()
        for spool in spools.values():
            spool.close()
        for future in [*downloads.values(), *stages.values()]:
            future.cancel()
        raise
    finally:
        download_pool.shutdown(wait=True)
        unpack_pool.shutdown(wait=True)
        for position, future in stages.items():
            if position not in published and future.done() and not future.cancelled() \
                    and future.exception() is None:
                handler.discard(future.result())
    return PulledImage(target, chosen, config, layers, fresh)


def _stage(position: int, layer: Descriptor, store: ContentStore, handler: PullHandler,
           download: Future[None] | None, spool: Spool | None) -> object:
    """Unpack one layer (in an unpacker thread): from its download as it comes, or from
    the content store once the blob is there."""
    layer_id = short_id(layer.digest)

    def extracting(done: int) -> None:
        handler.progress(layer_id, "Extracting", done, layer.size)

    if spool is not None and spool.attach():
        assert download is not None
        try:
            staged = handler.stage(position, layer, spool, extracting)
        except Exception:
            # A stream that broke is first a download problem: its own error (a
            # verification failure) says more than the unpacker's.
            spool.close()
            download_error = download.exception()
            if download_error is not None:
                raise download_error from None
            raise
        finally:
            spool.close()
        try:
            download.result()  # the blob is verified and stored
        except BaseException:
            handler.discard(staged)
            raise
        return staged
    if download is not None:
        download.result()
    else:
        handler.progress(layer_id, "Download complete")
    with store.open(layer.digest) as stream:
        return handler.stage(position, layer, stream, extracting)


def _download(client: RegistryClient, repository: str, layer: Descriptor,
              store: ContentStore, handler: PullHandler, failed: threading.Event,
              spool: Spool | None) -> None:
    try:
        _fetch_layer(client, repository, layer, store, handler, failed, spool)
    except BaseException as error:
        if spool is not None:
            spool.finish(error)
        raise
    if spool is not None:
        spool.finish()


def _fetch_layer(client: RegistryClient, repository: str, layer: Descriptor,
                 store: ContentStore, handler: PullHandler, failed: threading.Event,
                 spool: Spool | None) -> None:
    if failed.is_set():
        raise RegistryError("pull cancelled")
    layer_id = short_id(layer.digest)
    reported = [0, 0.0]  # bytes, time.monotonic()

    def downloading(done: int) -> None:
        if failed.is_set():
            raise RegistryError("pull cancelled")
        now = time.monotonic()
        if (done - reported[0] >= _PROGRESS_STEP and now - reported[1] >= PROGRESS_INTERVAL
                or done == layer.size):
            reported[0], reported[1] = done, now
            handler.progress(layer_id, "Downloading", done, layer.size)

    fetch_blob(client, repository, layer, store, downloading,
               spool.feed if spool is not None else None)
    handler.progress(layer_id, "Verifying Checksum")
    handler.progress(layer_id, "Download complete")
