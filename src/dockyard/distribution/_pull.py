"""Pulling one image: the name resolved to a manifest (through an index for the platform
asked for), then the config, then the layers downloaded in parallel and handed, in order,
to the caller to unpack as soon as each one and the ones below it are there.

Every blob and document is verified before it is stored; blobs already in the content
store are not downloaded again, which is what makes an interrupted pull resume.
"""

from __future__ import annotations

import threading
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
_PROGRESS_STEP = 512 << 10  # bytes between two "Downloading" messages of a layer


class PullHandler(Protocol):
    """What the engine does during a pull: show progress, say which layers it already
    has unpacked, unpack the others (called in layer order, from one thread)."""

    def progress(self, layer_id: str, status: str, current: int = -1,
                 total: int = -1) -> None: ...

    def resolved(self, target: Descriptor, manifest: Descriptor) -> None: ...

    def unpacked(self, config: bytes, layers: tuple[Descriptor, ...]) -> list[bool]: ...

    def unpack(self, position: int, layer: Descriptor, stream: Readable,
               progress: Callable[[int], None]) -> None: ...


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
    fresh |= bool(to_fetch)
    downloads: dict[int, Future[None]] = {}
    # Layers to unpack are handed over while they download (see _spool).
    spools = {i: Spool() for i in to_fetch if not unpacked[i]}
    failed = threading.Event()
    with ThreadPoolExecutor(max_workers=MAX_CONCURRENT_DOWNLOADS,
                            thread_name_prefix="pull") as pool:
        for position in to_fetch[MAX_CONCURRENT_DOWNLOADS:]:
            # Queued behind the downloads that start now, as dockerd shows them.
            handler.progress(short_id(layers[position].digest), "Waiting")
        for position in to_fetch:
            downloads[position] = pool.submit(_download, client, repository, layers[position],
                                              store, handler, failed, spools.get(position))
        try:
            for position, layer in enumerate(layers):
                if already[position]:
                    continue
                layer_id = short_id(layer.digest)

                def extracting(done: int, layer_id: str = layer_id,
                               total: int = layer.size) -> None:
                    handler.progress(layer_id, "Extracting", done, total)

                spool = spools.get(position)
                if spool is not None and not downloads[position].done() and spool.attach():
                    try:
                        handler.unpack(position, layer, spool, extracting)
                    except Exception:
                        # A stream that broke is first a download problem: its own error
                        # (a verification failure) says more than the unpacker's.
                        spool.close()
                        download_error = downloads[position].exception()
                        if download_error is not None:
                            raise download_error from None
                        raise
                    finally:
                        spool.close()
                    downloads[position].result()
                else:
                    if position in downloads:
                        downloads[position].result()
                    else:
                        handler.progress(layer_id, "Download complete")
                    if not unpacked[position]:
                        with store.open(layer.digest) as stream:
                            handler.unpack(position, layer, stream, extracting)
                handler.progress(layer_id, "Pull complete")
        except BaseException:
            failed.set()
            for spool in spools.values():
                spool.close()
            for future in downloads.values():
                future.cancel()
            raise
    return PulledImage(target, chosen, config, layers, fresh)


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
    reported = [0]

    def downloading(done: int) -> None:
        if failed.is_set():
            raise RegistryError("pull cancelled")
        if done - reported[0] >= _PROGRESS_STEP or done == layer.size:
            reported[0] = done
            handler.progress(layer_id, "Downloading", done, layer.size)

    fetch_blob(client, repository, layer, store, downloading,
               spool.feed if spool is not None else None)
    handler.progress(layer_id, "Verifying Checksum")
    handler.progress(layer_id, "Download complete")
