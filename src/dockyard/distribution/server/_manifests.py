"""What the registry checks in a pushed manifest, and what it learns from it.

A manifest is stored byte for byte as pushed; before that, it must parse as an OCI or
Docker schema-2 manifest or index, agree with its Content-Type, and (as distribution does)
reference only blobs and manifests the repository has. Its `subject`, if any, makes it a
referrer, listed by the referrers API.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.image import mediatypes
from dockyard.image.digest import Digest
from dockyard.image.errors import ManifestError
from dockyard.image.manifest import Descriptor, document_kind, parse_index, parse_manifest

from ._errors import RegistryError

MANIFEST_MEDIA_TYPES = frozenset({mediatypes.OCI_MANIFEST, mediatypes.DOCKER_MANIFEST,
                                  mediatypes.OCI_INDEX, mediatypes.DOCKER_MANIFEST_LIST})
# Content types that say nothing about the document: the document's own mediaType (or
# its shape) decides.
_GENERIC = frozenset({"", "application/json", "application/octet-stream"})
_SCHEMA1 = frozenset({mediatypes.DOCKER_MANIFEST_V1, mediatypes.DOCKER_MANIFEST_V1_SIGNED})


@dataclass
class PushedManifest:
    media_type: str
    blobs: list[Descriptor] = field(default_factory=list)      # must be in the repository
    manifests: list[Descriptor] = field(default_factory=list)  # children of an index
    subject: Descriptor | None = None
    artifact_type: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

    def referrer_descriptor(self, digest: Digest, size: int) -> dict[str, Any]:
        """The descriptor listed by the referrers API for this manifest."""
        descriptor: dict[str, Any] = {"mediaType": self.media_type, "digest": str(digest),
                                      "size": size}
        if self.artifact_type:
            descriptor["artifactType"] = self.artifact_type
        if self.annotations:
            descriptor["annotations"] = self.annotations
        return descriptor


def _invalid(message: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", detail=message)


def inspect_manifest(data: bytes, content_type: str) -> PushedManifest:
    """Parse a pushed manifest; MANIFEST_INVALID naming the problem when it is not one."""
    declared = content_type.split(";", 1)[0].strip().lower()
    if declared in _SCHEMA1:
        raise _invalid("Docker schema 1 manifests are not supported")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as error:
        raise _invalid(f"not JSON: {error}") from None
    if not isinstance(doc, dict):
        raise _invalid("not a JSON object")
    own = doc.get("mediaType")
    if own is not None and not isinstance(own, str):
        raise _invalid("mediaType: expected a string")
    if declared in _GENERIC:
        media_type = own or ""
        if not media_type:
            try:
                kind = document_kind(data)
            except ManifestError as error:
                raise _invalid(str(error)) from None
            media_type = mediatypes.OCI_INDEX if kind == "index" else mediatypes.OCI_MANIFEST
    else:
        media_type = declared
        if own and own != declared:
            raise _invalid(f"mediaType {own!r} does not match the Content-Type {declared!r}")
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise RegistryError("MANIFEST_INVALID",
                            detail=f"unsupported manifest media type {media_type!r}")
    try:
        if mediatypes.is_index(media_type):
            index = parse_index(data, media_type)
            return PushedManifest(media_type, manifests=list(index.manifests),
                                  subject=index.subject,
                                  artifact_type=_string(doc.get("artifactType")),
                                  annotations=dict(index.annotations))
        manifest = parse_manifest(data, media_type)
    except ManifestError as error:
        raise _invalid(str(error)) from None
    # Layers that are fetched from elsewhere (urls, non-distributable) are not pushed.
    blobs = [manifest.config] + [layer for layer in manifest.layers
                                 if not layer.urls and not _foreign(layer.media_type)]
    return PushedManifest(media_type, blobs=blobs, subject=manifest.subject,
                          artifact_type=manifest.artifact_type or manifest.config.media_type,
                          annotations=dict(manifest.annotations))


def _foreign(media_type: str) -> bool:
    return "nondistributable" in media_type or "foreign" in media_type


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""
