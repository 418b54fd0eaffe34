"""The registry's HTTP API (OCI distribution spec, Docker registry API v2): routing,
access checks, and one handler per endpoint over RegistryStorage."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from dockyard.image import mediatypes
from dockyard.image.digest import Digest, new_hasher
from dockyard.image.errors import DigestError, DigestMismatchError

from ._auth import AccessController, TokenAccess, TokenService
from ._errors import RegistryError
from ._http import Body, BodyTooLarge, ClientGone, FileBody, Request, Response, StreamBody
from ._manifests import MANIFEST_MEDIA_TYPES as _MANIFEST_TYPES
from ._manifests import inspect_manifest
from ._names import check_name, is_valid_name, is_valid_tag
from ._proxy import PullThrough, UpstreamError
from ._ranges import UnsatisfiableRange, parse_range, parse_upload_range
from ._ratelimit import RateLimiter
from ._storage import RegistryStorage, Upload
from ._tokens import Scope

_log = logging.getLogger("dockyard.registry")
_access_log = logging.getLogger("dockyard.registry.access")

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
JSON = "application/json; charset=utf-8"
MAX_MANIFEST_SIZE = 4 << 20   # what the spec asks registries to accept at least
# Upload bodies go to the worker thread in batches of about this size.
_WRITE_BATCH = 1 << 20

_NAME = r"(?P<name>[^?#]+?)"
_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/v2/?"), "base"),
    (re.compile(r"/v2/_catalog"), "catalog"),
    (re.compile(rf"/v2/{_NAME}/tags/list"), "tags"),
    (re.compile(rf"/v2/{_NAME}/manifests/(?P<reference>[^/]+)"), "manifest"),
    (re.compile(rf"/v2/{_NAME}/blobs/uploads/?"), "uploads"),
    (re.compile(rf"/v2/{_NAME}/blobs/uploads/(?P<upload>[^/]+)"), "upload"),
    (re.compile(rf"/v2/{_NAME}/blobs/(?P<digest>[^/]+)"), "blob"),
    (re.compile(rf"/v2/{_NAME}/referrers/(?P<digest>[^/]+)"), "referrers"),
]
_METHODS = {
    "base": {"GET", "HEAD"}, "catalog": {"GET"}, "tags": {"GET"},
    "manifest": {"GET", "HEAD", "PUT", "DELETE"}, "uploads": {"POST"},
    "upload": {"GET", "PATCH", "PUT", "DELETE"}, "blob": {"GET", "HEAD", "DELETE"},
    "referrers": {"GET"},
}


def _needed(route: str, method: str, name: str | None) -> list[Scope]:
    if route == "base":
        return []
    if route == "catalog":
        return [Scope("registry", "catalog", frozenset({"*"}))]
    assert name is not None
    if method in ("GET", "HEAD"):
        actions = {"pull"}
    elif method == "DELETE" and route in ("manifest", "blob"):
        actions = {"delete"}
    else:
        actions = {"pull", "push"}   # distribution asks both for every write
    return [Scope("repository", name, frozenset(actions))]


def _parse_digest(text: str) -> Digest:
    try:
        return Digest(text)
    except DigestError as error:
        raise RegistryError("DIGEST_INVALID", f"invalid digest {text!r}: {error}") from None


def _json(data: Any, status: int = 200, headers: list[tuple[str, str]] | None = None,
          content_type: str = JSON) -> Response:
    return Response(status, [("Content-Type", content_type), *(headers or [])],
                    (json.dumps(data) + "\n").encode())


def _accepted_types(header: str | None) -> set[str] | None:
    """The manifest types an Accept header lists; None when it accepts anything."""
    if not header:
        return None
    types = {part.split(";", 1)[0].strip().lower() for part in header.split(",")}
    if "*/*" in types or not types & _MANIFEST_TYPES:
        return None
    return types


def _pagination(request: Request) -> tuple[int | None, str | None]:
    text = request.arg("n")
    n = None
    if text is not None and text != "":
        try:
            n = int(text)
        except ValueError:
            n = -1
        if n < 0:
            raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": text})
    return n, request.arg("last")


def _page(items: list[str], n: int | None, last: str | None, path: str,
          extra: dict[str, str] | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """The page after `last` of at most `n` items, and a Link header when more follow."""
    if last:
        items = [item for item in items if item > last]
    if n is None or len(items) <= n:
        return items, []
    page = items[:n]
    if not page:
        return page, []
    query = urlencode({**(extra or {}), "last": page[-1], "n": str(n)})
    return page, [("Link", f'<{path}?{query}>; rel="next"')]


class RegistryApp:
    """Answers one request at a time (the HTTP server calls `handle` per request)."""

    def __init__(self, storage: RegistryStorage, access: AccessController,
                 token_service: TokenService | None = None, token_path: str = "/token",
                 fsync: bool = True, read_only: bool = False,
                 proxy: PullThrough | None = None,
                 rate_limiter: RateLimiter | None = None) -> None:
        self.storage = storage
        self._rate_limiter = rate_limiter
        self._read_only = read_only
        self._proxy = proxy
        self._access = access
        self._token_service = token_service
        self._token_path = token_path
        self._fsync = fsync
        self._handlers: dict[str, Callable[..., Awaitable[Response]]] = {
            "base": self._base, "catalog": self._catalog, "tags": self._tags,
            "manifest": self._manifest, "uploads": self._start_upload,
            "upload": self._upload, "blob": self._blob, "referrers": self._referrers}

    async def handle(self, request: Request) -> Response:
        started = time.monotonic()
        try:
            if self._rate_limiter is not None:
                self._rate_limiter.check(request.peer.rpartition(":")[0])
            response = await self._dispatch(request)
        except RegistryError as error:
            response = Response(error.status, [("Content-Type", JSON), *error.headers],
                                error.body())
        except (ClientGone, asyncio.CancelledError):
            raise
        except Exception as error:
            _log.exception("%s %s failed", request.method, request.path)
            response = _json({"errors": [{"code": "UNKNOWN", "message": "unknown error",
                                          "detail": str(error)}]}, 500)
        response.headers.append(API_VERSION)
        if _access_log.isEnabledFor(logging.INFO):
            _access_log.info("%s %s %s %d %.3fs", request.peer, request.method,
                             request.target, response.status, time.monotonic() - started)
        return response

    async def _dispatch(self, request: Request) -> Response:
        path = request.path
        if self._token_service is not None and path == self._token_path:
            return await self._token_service.handle(request)
        for pattern, route in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            params = match.groupdict()
            name = params.pop("name", None)
            if name is not None:
                check_name(name)
            if request.method not in _METHODS[route]:
                raise RegistryError("UNSUPPORTED", f"method {request.method} not allowed",
                                    headers=[("Allow", ", ".join(sorted(_METHODS[route])))])
            await self._access.authorize(request, _needed(route, request.method, name))
            if self._read_only and request.method not in ("GET", "HEAD"):
                raise RegistryError("UNSUPPORTED", "the registry is in read-only mode")
            if self._proxy is not None and request.method not in ("GET", "HEAD"):
                raise RegistryError("UNSUPPORTED", "the registry is a pull-through cache")
            handler = self._handlers[route]
            return await (handler(request, name, **params) if name is not None
                          else handler(request))
        return Response(404, [("Content-Type", "text/plain; charset=utf-8")],
                        b"404 page not found\n")

    # -- discovery -------------------------------------------------------------------------

    async def _base(self, request: Request) -> Response:
        return _json({})

    async def _catalog(self, request: Request) -> Response:
        n, last = _pagination(request)
        names, link = _page(self.storage.repositories(), n, last, "/v2/_catalog")
        return _json({"repositories": names}, headers=link)

    async def _tags(self, request: Request, name: str) -> Response:
        n, last = _pagination(request)
        if self._proxy is not None:
            # A cache lists upstream's tags; its own when upstream is unreachable.
            try:
                found = await self._proxy.tags(request.target, name)
            except UpstreamError as error:
                _log.warning("listing the cached tags of %s: %s", name, error)
            else:
                if found is None:
                    raise RegistryError("NAME_UNKNOWN", detail={"name": name})
                body, link = found
                return Response(200, [("Content-Type", JSON),
                                      *([("Link", link)] if link else [])], body)
        if not self.storage.repository_exists(name):
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        tags, link = _page(self.storage.tags(name), n, last, f"/v2/{name}/tags/list")
        return _json({"name": name, "tags": tags}, headers=link)

    async def _referrers(self, request: Request, name: str, digest: str) -> Response:
        subject = _parse_digest(digest)
        found = self.storage.referrers(name, subject)
        headers = []
        wanted = request.arg("artifactType")
        if wanted:
            found = [d for d in found if d.get("artifactType") == wanted]
            headers.append(("OCI-Filters-Applied", "artifactType"))
        index = {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": found}
        return _json(index, headers=headers, content_type=mediatypes.OCI_INDEX)

    # -- manifests -------------------------------------------------------------------------

    def _reference(self, reference: str) -> tuple[str | None, Digest | None]:
        """(tag, None) or (None, digest) of a manifest reference."""
        if ":" in reference:
            return None, _parse_digest(reference)
        if not is_valid_tag(reference):
            raise RegistryError("TAG_INVALID", f"invalid tag {reference!r}",
                                detail={"tag": reference})
        return reference, None

    async def _manifest(self, request: Request, name: str, reference: str) -> Response:
        tag, digest = self._reference(reference)
        if request.method == "PUT":
            return await self._put_manifest(request, name, tag, digest)
        if request.method == "DELETE":
            deleted = (self.storage.delete_tag(name, tag) if tag is not None
                       else self.storage.delete_manifest(name, digest))  # type: ignore[arg-type]
            if not deleted:
                raise RegistryError("MANIFEST_UNKNOWN", detail={"Name": name,
                                                                "Revision": reference})
            return Response(202)
        if self._proxy is not None:
            await self._pull_manifest(self._proxy, name, tag, digest)
        if tag is not None:
            digest = self.storage.resolve_tag(name, tag)
        found = self.storage.manifest(name, digest) if digest is not None else None
        if found is None or digest is None:
            detail = {"Tag": tag} if tag is not None else {"Revision": reference}
            raise RegistryError("MANIFEST_UNKNOWN", detail={"Name": name, **detail})
        media_type, path = found
        data = path.read_bytes()
        accepted = _accepted_types(request.header("accept"))
        if accepted is not None and media_type not in accepted:
            media_type, digest, data = self._negotiate(name, media_type, data, accepted)
        return Response(200, [("Content-Type", media_type), ("Docker-Content-Digest", digest),
                              ("ETag", f'"{digest}"')], data)

    async def _pull_manifest(self, proxy: PullThrough, name: str, tag: str | None,
                             digest: Digest | None) -> None:
        """Pull-through: a tag is asked upstream every time (the cached one answers when
        upstream is unreachable); a digest only when it is not cached."""
        if tag is None and digest is not None and self.storage.manifest(name, digest):
            return
        try:
            found = await proxy.refresh_manifest(name, tag or str(digest))
        except UpstreamError as error:
            if tag is not None and self.storage.resolve_tag(name, tag) is not None:
                _log.warning("serving %s:%s from the cache: %s", name, tag, error)
                return
            raise RegistryError("UNAVAILABLE", f"upstream registry: {error}") from None
        if not found and tag is not None:
            self.storage.delete_tag(name, tag)   # gone upstream: gone here

    def _negotiate(self, name: str, media_type: str, data: bytes,
                   accepted: set[str]) -> tuple[str, Digest, bytes]:
        """What distribution serves a client whose Accept excludes the stored type: for
        an index, its linux/amd64 manifest when that type is accepted; else 404."""
        if mediatypes.is_index(media_type):
            for child in json.loads(data).get("manifests") or []:
                platform = child.get("platform") or {}
                if (platform.get("os"), platform.get("architecture")) != ("linux", "amd64"):
                    continue
                try:
                    digest = Digest(child.get("digest", ""))
                except DigestError:
                    continue
                found = self.storage.manifest(name, digest)
                if found is not None and found[0] in accepted:
                    return found[0], digest, found[1].read_bytes()
        kind = "index" if mediatypes.is_index(media_type) else "manifest"
        raise RegistryError("MANIFEST_UNKNOWN", f"{media_type} {kind} found, but the Accept "
                            "header does not support it")

    async def _put_manifest(self, request: Request, name: str, tag: str | None,
                            expected: Digest | None) -> Response:
        try:
            data = await request.body.read(MAX_MANIFEST_SIZE)
        except BodyTooLarge:
            raise RegistryError("SIZE_INVALID", "manifest too large",
                                detail={"limit": MAX_MANIFEST_SIZE}, status=413) from None
        algorithm = expected.algorithm if expected is not None else "sha256"
        hasher = new_hasher(algorithm)
        hasher.update(data)
        digest = Digest(f"{algorithm}:{hasher.hexdigest()}")
        if expected is not None and digest != expected:
            raise RegistryError("DIGEST_INVALID", detail={
                "expected": str(expected), "actual": str(digest)})
        pushed = inspect_manifest(data, request.header("content-type") or "")
        errors = []
        for blob in pushed.blobs:
            if self.storage.repository_blob_size(name, blob.digest) is None:
                errors.append({"code": "MANIFEST_BLOB_UNKNOWN",
                               "message": "blob unknown to registry",
                               "detail": {"digest": str(blob.digest)}})
        for child in pushed.manifests:
            if self.storage.manifest(name, child.digest) is None:
                errors.append({"code": "MANIFEST_BLOB_UNKNOWN",
                               "message": "manifest unknown to registry",
                               "detail": {"digest": str(child.digest)}})
        if errors:
            return _json({"errors": errors}, 400)
        referrer = None
        headers = [("Location", f"/v2/{name}/manifests/{digest}"),
                   ("Docker-Content-Digest", digest)]
        if pushed.subject is not None:
            referrer = (pushed.subject.digest, pushed.referrer_descriptor(digest, len(data)))
            headers.append(("OCI-Subject", pushed.subject.digest))
        self.storage.put_manifest(name, digest, pushed.media_type, data, tag, referrer)
        return Response(201, headers)

    # -- blobs -----------------------------------------------------------------------------

    async def _blob(self, request: Request, name: str, digest: str) -> Response:
        checked = _parse_digest(digest)
        if request.method == "DELETE":
            if not self.storage.unlink_blob(name, checked):
                raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
            return Response(202)
        headers = [("Docker-Content-Digest", checked), ("ETag", f'"{checked}"'),
                   ("Accept-Ranges", "bytes"), ("Cache-Control", "max-age=31536000"),
                   ("Content-Type", "application/octet-stream")]
        size = self.storage.repository_blob_size(name, checked)
        if size is None and self._proxy is not None:
            try:
                download = await self._proxy.download(name, checked)
                if download is not None and download.finished.done():
                    size = self.storage.repository_blob_size(name, checked)
                elif download is not None and download.streamable and \
                        request.header("range") is None:
                    assert download.size is not None
                    return Response(200, headers, stream=StreamBody(download.chunks(),
                                                                    download.size))
                elif download is not None:
                    await asyncio.shield(download.finished)  # others wait on it too
                    size = self.storage.repository_blob_size(name, checked)
            except UpstreamError as error:
                raise RegistryError("UNAVAILABLE", f"upstream registry: {error}") from None
        if size is None:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        try:
            wanted = parse_range(request.header("range"), size)
        except UnsatisfiableRange:
            raise RegistryError("RANGE_INVALID", "requested range not satisfiable",
                                headers=[("Content-Range", f"bytes */{size}")]) from None
        try:
            handle = open(self.storage.blob_path(checked), "rb")  # noqa: SIM115 (http closes)
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest}) from None
        if wanted is None:
            return Response(200, headers, file=FileBody(handle, 0, size))
        start, end = wanted
        headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        return Response(206, headers, file=FileBody(handle, start, end - start + 1))

    # -- uploads ---------------------------------------------------------------------------

    def _upload_headers(self, upload: Upload) -> list[tuple[str, str]]:
        size = upload.size
        return [("Location", f"/v2/{upload.name}/blobs/uploads/{upload.id}"),
                ("Range", f"0-{max(size - 1, 0)}"), ("Docker-Upload-UUID", upload.id)]

    def _created(self, name: str, digest: Digest) -> Response:
        return Response(201, [("Location", f"/v2/{name}/blobs/{digest}"),
                              ("Docker-Content-Digest", digest)])

    async def _start_upload(self, request: Request, name: str) -> Response:
        mount, source = request.arg("mount"), request.arg("from")
        if mount and source and is_valid_name(source):
            mounted = self._mount(request, name, _parse_digest(mount), source)
            if mounted is not None:
                return mounted
        digest_text = request.arg("digest")
        expected = _parse_digest(digest_text) if digest_text is not None else None
        upload = self.storage.start_upload(name)
        if expected is None:
            return Response(202, self._upload_headers(upload))
        try:
            await self._receive(upload, request.body)
            return await self._finish(upload, expected)
        except BaseException:
            self.storage.cancel_upload(upload)
            raise

    def _mount(self, request: Request, name: str, digest: Digest,
               source: str) -> Response | None:
        if isinstance(self._access, TokenAccess) and not self._access.grants(
                request, Scope("repository", source, frozenset({"pull"}))):
            return None  # no right to read the source: an ordinary upload instead
        if self.storage.repository_blob_size(source, digest) is None:
            return None
        self.storage.link_blob(name, digest)
        return self._created(name, digest)

    async def _upload(self, request: Request, name: str, upload: str) -> Response:
        session = self.storage.upload(name, upload)
        if session is None:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload})
        if request.method == "GET":
            return Response(204, self._upload_headers(session))
        if request.method == "DELETE":
            self.storage.cancel_upload(session)
            return Response(204)
        expected = None
        if request.method == "PUT":
            digest_text = request.arg("digest")
            if not digest_text:
                raise RegistryError("DIGEST_INVALID", "digest missing")
            expected = _parse_digest(digest_text)
        self._check_chunk(request, session)
        await self._receive(session, request.body)
        if expected is None:
            return Response(202, self._upload_headers(session))
        return await self._finish(session, expected)

    def _check_chunk(self, request: Request, upload: Upload) -> None:
        """A chunk with a Content-Range must start where the upload ends (else 416)."""
        text = request.header("content-range")
        length = request.header("content-length")
        if not text:
            return
        parsed = parse_upload_range(text)
        if parsed is None:
            raise RegistryError("BLOB_UPLOAD_INVALID", f"malformed Content-Range {text!r}")
        start, end = parsed
        if start != upload.size:
            raise RegistryError("RANGE_INVALID", headers=self._upload_headers(upload),
                                detail={"expected_start": upload.size, "start": start})
        if length is not None and length.strip().isdigit() and int(length) != end - start + 1:
            raise RegistryError("SIZE_INVALID", detail={
                "content_range": text, "content_length": int(length)})

    async def _receive(self, upload: Upload, body: Body) -> None:
        """Append the request body to the upload: the event loop reads the socket while a
        worker thread hashes and writes the previous batch."""
        if body.done:
            return
        loop = asyncio.get_running_loop()
        fd = upload.open_for_append()
        pending: asyncio.Future[None] | None = None
        batch: list[bytes] = []
        batched = 0
        try:
            try:
                async for chunk in body:
                    batch.append(chunk)
                    batched += len(chunk)
                    if batched >= _WRITE_BATCH:
                        if pending is not None:
                            await pending
                        pending = loop.run_in_executor(None, upload.append, fd, batch,
                                                       self._fsync)
                        batch, batched = [], 0
            except ClientGone:
                # Keep what arrived: the client may resume from the offset a GET reports.
                if pending is not None:
                    await pending
                    pending = None
                await loop.run_in_executor(None, upload.append, fd, batch, self._fsync)
                raise
            if pending is not None:
                await pending
                pending = None
            if batch:
                await loop.run_in_executor(None, upload.append, fd, batch, self._fsync)
        finally:
            if pending is not None:
                # Do not close the file under a thread still writing to it.
                await asyncio.shield(asyncio.wait([pending]))
            os.close(fd)

    async def _finish(self, upload: Upload, expected: Digest) -> Response:
        loop = asyncio.get_running_loop()
        actual = await loop.run_in_executor(None, upload.digest, expected.algorithm)
        if actual != expected:
            self.storage.cancel_upload(upload)
            raise RegistryError("DIGEST_INVALID", detail={
                "expected": str(expected), "actual": str(actual)})
        try:
            await loop.run_in_executor(None, self._commit, upload, expected)
        except DigestMismatchError as error:
            raise RegistryError("DIGEST_INVALID", str(error)) from None
        return self._created(upload.name, expected)

    def _commit(self, upload: Upload, digest: Digest) -> None:
        if self._fsync:
            fd = os.open(upload.data, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self.storage.commit_upload(upload, digest)


