"""Writing images as the archive Docker 25+ `docker save` writes.

One tar holds an OCI image layout (oci-layout, index.json, blobs/sha256/...) and, for
older readers, Docker's manifest.json and repositories pointing into the same blobs:
`docker load` (any version), `podman load`, and skopeo's `oci-archive:` and
`docker-archive:` transports all read it. Blobs are written as stored (compressed
layers stay compressed; Docker and skopeo decompress layer files in manifest.json).

Deliberate difference from Docker 25: the org.opencontainers.image.ref.name annotation
carries the familiar name ("dockyard-fixture:1.0", as skopeo writes it) rather than the
bare tag, so that `skopeo copy oci-archive:FILE:NAME` finds the image by the name a user
knows; Docker and podman read the full name from io.containerd.image.name either way.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from typing import IO, Any

from dockyard.image import mediatypes
from dockyard.image.content import ContentStore
from dockyard.image.digest import Digest
from dockyard.image.errors import DigestMismatchError
from dockyard.image.manifest import Descriptor, build_index, to_go_json
from dockyard.image.reference import Reference
from dockyard.image.resolve import ResolvedImage

_LAYOUT = b'{"imageLayoutVersion": "1.0.0"}'


def _blob_path(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def _index_entries(image: ResolvedImage, names: Sequence[Reference]) -> list[Descriptor]:
    target = image.target
    if not names:
        return [Descriptor(target.media_type, target.digest, target.size)]
    return [Descriptor(target.media_type, target.digest, target.size, annotations={
        mediatypes.ANNOTATION_IMAGE_NAME: str(name),
        mediatypes.ANNOTATION_REF_NAME: name.familiar(),
    }) for name in names]


def _manifest_item(image: ResolvedImage, names: Sequence[Reference],
                   store: ContentStore) -> dict[str, Any]:
    item: dict[str, Any] = {
        "Config": _blob_path(image.config.digest),
        # Docker lists only name:tag references here; null when there are none.
        "RepoTags": [n.familiar() for n in names if n.tag is not None and n.digest is None]
        or None,
        "Layers": [_blob_path(layer.digest) for layer in image.layers],
    }
    foreign = {str(image.diff_ids[i]): layer.to_json() for i, layer in enumerate(image.layers)
               if mediatypes.is_foreign_layer(layer.media_type) and not store.has(layer.digest)}
    if foreign:
        item["LayerSources"] = foreign
    return item


def _repositories(images: Sequence[tuple[ResolvedImage, Sequence[Reference]]]) -> dict[str, Any]:
    """The pre-1.10 "repositories" file: familiar name -> tag -> top layer's hex."""
    repositories: dict[str, dict[str, str]] = {}
    for image, names in images:
        if not image.layers:
            continue
        for name in names:
            if name.tag is not None and name.digest is None:
                repositories.setdefault(name.familiar_name, {})[name.tag] = \
                    image.layers[-1].digest.hex
    return {key: dict(sorted(tags.items())) for key, tags in sorted(repositories.items())}


def _info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    # Fixed owner, mode and time (the epoch, as Docker uses): the same images always
    # give the same archive.
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    else:
        info.mode = 0o644
    return info


def write_archive(images: Sequence[tuple[ResolvedImage, Sequence[Reference]]],
                  fileobj: IO[bytes], store: ContentStore) -> None:
    blobs: dict[Digest, None] = {}
    for image, _ in images:
        blobs.update(dict.fromkeys(image.blobs))
    index_entries = [entry for image, names in images for entry in _index_entries(image, names)]
    manifest_json = [_manifest_item(image, names, store) for image, names in images]
    repositories = _repositories(images)

    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("blobs/", directory=True))
        for algorithm in sorted({digest.algorithm for digest in blobs}):
            tar.addfile(_info(f"blobs/{algorithm}/", directory=True))
        for digest in blobs:
            with store.open(digest, verify=True) as source:
                tar.addfile(_info(_blob_path(digest), store.size(digest)), source)
                # tarfile reads exactly the size; one more read reaches the end, which is
                # where the verifying reader compares the digest.
                if source.read(1):
                    raise DigestMismatchError(f"blob {digest} changed while being written")
        documents = [
            ("oci-layout", _LAYOUT),
            ("index.json", build_index(index_entries)),
            ("manifest.json", to_go_json(manifest_json) + b"\n"),
        ]
        if repositories:
            documents.append(("repositories", to_go_json(repositories) + b"\n"))
        for name, data in documents:
            tar.addfile(_info(name, len(data)), io.BytesIO(data))
