"""The registry requests of pull and push, one function each: manifests by tag or digest,
blobs (download into the content store, existence, cross-repository mount, monolithic
and chunked upload) and tag listing."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import IO

from ..image import ContentStore, Descriptor, Digest, DigestMismatchError, mediatypes, sha256_of
from ..image.resolve import MAX_DOCUMENT_SIZE
from ._client import RegistryClient
from ._errors import NotFoundError, RegistryError, VerificationError, error_from_response

ACCEPT_MANIFESTS = ", ".join((mediatypes.OCI_INDEX, mediatypes.OCI_MANIFEST,
                              mediatypes.DOCKER_MANIFEST_LIST, mediatypes.DOCKER_MANIFEST))
_CHUNK = 1 << 20
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')

Progress = Callable[[int], None]  # bytes done so far


def get_manifest(client: RegistryClient, repository: str,
                 reference: str) -> tuple[bytes, Descriptor]:
    """The manifest or index `reference` (a tag or a digest) names, and its descriptor.
    The bytes are checked against the digest asked for, or the one the registry says."""
    with client.request("GET", repository, f"manifests/{reference}",
                        headers={"Accept": ACCEPT_MANIFESTS}) as response:
        data = response.read(MAX_DOCUMENT_SIZE + 1)
        if response.status != 200:
            error = error_from_response(response.status, data, f"unexpected status "
                                        f"{response.status} fetching manifest")
            if isinstance(error, NotFoundError) or response.status == 404:
                raise NotFoundError(f"{error}", 404, error.codes)
            raise error
        media_type = response.header("Content-Type").split(";")[0].strip()
        announced = response.header("Docker-Content-Digest")
    if len(data) > MAX_DOCUMENT_SIZE:
        raise RegistryError(f"manifest {reference}: larger than {MAX_DOCUMENT_SIZE} bytes")
    actual = sha256_of(data)
    expected = reference if reference.startswith("sha256:") else announced
    if expected and expected.startswith("sha256:") and expected != actual:
        raise VerificationError(f"manifest verification failed for digest {expected}")
    if not (mediatypes.is_index(media_type) or mediatypes.is_manifest(media_type)):
        # Some registries answer with a generic type: the document's own field decides.
        try:
            own = json.loads(data).get("mediaType", "")
        except (ValueError, AttributeError):
            own = ""
        if mediatypes.is_index(own) or mediatypes.is_manifest(own):
            media_type = own
        else:
            media_type = (mediatypes.OCI_INDEX if b'"manifests"' in data
                          else mediatypes.OCI_MANIFEST)
    return data, Descriptor(media_type, actual, len(data))


def head_manifest(client: RegistryClient, repository: str, reference: str) -> str | None:
    """The digest of a manifest if the registry has it (None if not)."""
    with client.request("HEAD", repository, f"manifests/{reference}",
                        headers={"Accept": ACCEPT_MANIFESTS}) as response:
        response.read()
        if response.status == 404:
            return None
        if response.status != 200:
            raise error_from_response(response.status, b"", f"unexpected status "
                                      f"{response.status} checking manifest {reference}")
        return response.header("Docker-Content-Digest") or None


def fetch_blob(client: RegistryClient, repository: str, blob: Descriptor,
               store: ContentStore, progress: Progress | None = None,
               tee: Callable[[bytes], None] | None = None) -> None:
    """Download `blob` into the store, verified against its digest and size. Nothing is
    kept if it does not match. `tee` sees every chunk as it arrives (unverified)."""
    with client.request("GET", repository, f"blobs/{blob.digest}") as response:
        if response.status != 200:
            data = response.read(65536)
            raise error_from_response(response.status, data, f"unexpected status "
                                      f"{response.status} fetching blob {blob.digest}")
        reader = _CountingReader(response, progress, tee)
        try:
            store.ingest(reader, blob.digest, blob.size)
        except DigestMismatchError:
            raise VerificationError(f"filesystem layer verification failed for digest "
                                    f"{blob.digest}") from None


class _CountingReader:
    def __init__(self, source: object, progress: Progress | None,
                 tee: Callable[[bytes], None] | None = None) -> None:
        self._source = source
        self._progress = progress
        self._tee = tee
        self.done = 0

    def read(self, size: int = -1, /) -> bytes:
        data: bytes = self._source.read(size if size > 0 else _CHUNK)  # type: ignore[attr-defined]
        if data:
            if self._tee is not None:
                self._tee(data)
            self.done += len(data)
            if self._progress is not None:
                self._progress(self.done)
        return data


def blob_exists(client: RegistryClient, repository: str, digest: str) -> bool:
    with client.request("HEAD", repository, f"blobs/{digest}", actions="pull,push") as response:
        response.read()
        if response.status == 200:
            return True
        if response.status == 404:
            return False
        raise error_from_response(response.status, b"", f"unexpected status "
                                  f"{response.status} checking blob {digest}")


def start_upload(client: RegistryClient, repository: str, *, mount: str = "",
                 mount_from: str = "") -> str | None:
    """POST an upload session; with `mount`, ask for the blob to be mounted from
    `mount_from` first: None when it was (201), else the upload location."""
    path = "blobs/uploads/"
    extra: tuple[str, ...] = ()
    if mount:
        path += f"?mount={mount}&from={mount_from}"
        extra = (f"repository:{mount_from}:pull",)
    with client.request("POST", repository, path, actions="pull,push", extra_scopes=extra,
                        headers={"Content-Length": "0"}, body=b"") as response:
        data = response.read()
        if mount and response.status == 201:
            return None
        if response.status != 202:
            raise error_from_response(response.status, data, f"unexpected status "
                                      f"{response.status} starting an upload")
        location = response.header("Location")
    if not location:
        raise RegistryError("the registry started an upload without a Location")
    return client.absolute(location)


def upload_blob(client: RegistryClient, repository: str, location: str, digest: str,
                size: int, opener: Callable[[], IO[bytes]], progress: Progress | None = None,
                chunk_size: int = 0) -> None:
    """Send a blob to an upload session: in one PUT (monolithic), or in PATCHes of
    `chunk_size` bytes closed by an empty PUT (chunked)."""
    with opener() as source:
        if chunk_size <= 0:
            reader = _CountingReader(source, progress)
            with client.request("PUT", repository, "", actions="pull,push",
                                url=_with_digest(location, digest), body=reader,  # type: ignore[arg-type]
                                headers={"Content-Type": "application/octet-stream",
                                         "Content-Length": str(size)}) as response:
                data = response.read()
                if response.status != 201:
                    raise error_from_response(response.status, data, f"unexpected status "
                                              f"{response.status} uploading {digest}")
            return
        offset = 0
        while offset < size:
            chunk = source.read(min(chunk_size, size - offset))
            if not chunk:
                raise RegistryError(f"blob {digest}: the local copy is shorter than {size}")
            headers = {"Content-Type": "application/octet-stream",
                       "Content-Length": str(len(chunk)),
                       "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
            with client.request("PATCH", repository, "", actions="pull,push", url=location,
                                body=chunk, headers=headers) as response:
                data = response.read()
                if response.status != 202:
                    raise error_from_response(response.status, data, f"unexpected status "
                                              f"{response.status} uploading {digest}")
                location = client.absolute(response.header("Location") or location)
            offset += len(chunk)
            if progress is not None:
                progress(offset)
    with client.request("PUT", repository, "", actions="pull,push",
                        url=_with_digest(location, digest), body=b"",
                        headers={"Content-Length": "0"}) as response:
        data = response.read()
        if response.status != 201:
            raise error_from_response(response.status, data, f"unexpected status "
                                      f"{response.status} completing the upload of {digest}")


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"


def put_manifest(client: RegistryClient, repository: str, reference: str, data: bytes,
                 media_type: str) -> Digest:
    with client.request("PUT", repository, f"manifests/{reference}", actions="pull,push",
                        body=data, headers={"Content-Type": media_type,
                                            "Content-Length": str(len(data))}) as response:
        body = response.read()
        if response.status not in (200, 201):
            raise error_from_response(response.status, body, f"unexpected status "
                                      f"{response.status} putting manifest {reference}")
    return sha256_of(data)


def list_tags(client: RegistryClient, repository: str) -> list[str]:
    """Every tag of a repository, following the pagination links."""
    tags: list[str] = []
    url: str | None = None
    while True:
        with client.request("GET", repository, "tags/list?n=1000", url=url) as response:
            data = response.read()
            if response.status != 200:
                raise error_from_response(response.status, data, f"unexpected status "
                                          f"{response.status} listing tags")
            link = response.header("Link")
        try:
            tags += [str(tag) for tag in json.loads(data).get("tags") or []]
        except (ValueError, AttributeError):
            raise RegistryError("the registry's tag list is not valid JSON") from None
        found = _NEXT_LINK.search(link or "")
        if not found:
            return tags
        url = client.absolute(found.group(1))
