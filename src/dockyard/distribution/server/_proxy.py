"""Pull-through cache: a read-only mirror that fetches what it lacks from an upstream
registry, verifies it, stores it, and serves it from then on.

Tags are asked upstream on every request (the cached manifest answers when upstream is
unreachable); manifests by digest and blobs come from the cache once fetched. A blob is
fetched whole into an upload session, verified, then committed like a push, so a partial
or corrupt download is never visible in the cache. Clients are served while the bytes
arrive, from the session's file; requests for a blob already being fetched read that
same download. The upstream client is blocking (http.client) and runs in worker
threads; it answers basic and bearer-token challenges with the configured credentials.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.client
import json
import os
import re
import ssl
import threading
from urllib.parse import urlencode, urlsplit

from dockyard.image.digest import Digest, new_hasher

from ._manifests import MANIFEST_MEDIA_TYPES
from ._storage import RegistryStorage

_CHUNK = 1 << 20
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_DEFAULT_ACCEPT = ", ".join(sorted(MANIFEST_MEDIA_TYPES))


class UpstreamError(Exception):
    """The upstream registry could not be reached or answered an unexpected status."""


class Upstream:
    """A minimal registry client: GET with the challenge-response dance of Docker's auth."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None,
                 timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"proxy remote {url!r}: expected http(s)://host[:port]")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._username = username
        self._password = password
        self._timeout = timeout
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._lock = threading.Lock()

    def _connection(self, host: str, port: int, https: bool) -> http.client.HTTPConnection:
        if https:
            return http.client.HTTPSConnection(host, port, timeout=self._timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(host, port, timeout=self._timeout)

    def _credentials(self) -> str | None:
        if self._username is None:
            return None
        raw = f"{self._username}:{self._password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _authorization(self, scope: str) -> str | None:
        with self._lock:
            token = self._tokens.get(scope)
        if token is not None:
            return f"Bearer {token}"
        return self._credentials() if self._basic else None

    def _answer_challenge(self, challenge: str, scope: str) -> None:
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self._username is None:
                raise UpstreamError("upstream asks for credentials and none are configured")
            self._basic = True
            return
        if scheme != "bearer":
            raise UpstreamError(f"unsupported upstream challenge {challenge!r}")
        params = dict(_CHALLENGE_PARAM.findall(challenge))
        realm = urlsplit(params.get("realm", ""))
        if realm.scheme not in ("http", "https") or not realm.hostname:
            raise UpstreamError(f"upstream challenge without a usable realm: {challenge!r}")
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        connection = self._connection(realm.hostname, realm.port or (
            443 if realm.scheme == "https" else 80), realm.scheme == "https")
        headers = {}
        credentials = self._credentials()
        if credentials is not None:
            headers["Authorization"] = credentials
        try:
            path = (realm.path or "/") + "?" + (realm.query + "&" if realm.query else "")
            connection.request("GET", path + urlencode(query), headers=headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise UpstreamError(f"token service: {error}") from None
        finally:
            connection.close()
        if response.status != 200:
            raise UpstreamError(f"token service answered {response.status}")
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise UpstreamError("token service answered without a token")
        with self._lock:
            self._tokens[scope] = token

    def get(self, path: str, scope: str, headers: dict[str, str] | None = None
            ) -> tuple[http.client.HTTPResponse, http.client.HTTPConnection]:
        """GET `path`; the caller reads the response and closes the connection."""
        for attempt in range(2):
            sent = dict(headers or {})
            authorization = self._authorization(scope)
            if authorization is not None:
                sent["Authorization"] = authorization
            connection = self._connection(self._host, self._port, self._https)
            try:
                connection.request("GET", path, headers=sent)
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                raise UpstreamError(f"upstream: {error}") from None
            if response.status == 401 and attempt == 0:
                challenge = response.getheader("WWW-Authenticate") or ""
                response.read()
                connection.close()
                self._answer_challenge(challenge, scope)
                continue
            return response, connection
        raise AssertionError("unreachable")


class PullThrough:
    """Fills a RegistryStorage from an Upstream on demand."""

    def __init__(self, storage: RegistryStorage, upstream: Upstream) -> None:
        self._storage = storage
        self._upstream = upstream
        self._fetching: dict[tuple[str, Digest], Download] = {}

    def _read(self, path: str, name: str, limit: int, headers: dict[str, str] | None = None
              ) -> tuple[http.client.HTTPResponse, bytes] | None:
        """GET a small document of repository `name`: (response, body), None for a 404."""
        response, connection = self._upstream.get(path, f"repository:{name}:pull", headers)
        try:
            data = response.read(limit)
        except (OSError, http.client.HTTPException) as error:
            raise UpstreamError(f"upstream: {error}") from None
        finally:
            connection.close()
        if response.status == 404:
            return None
        if response.status != 200:
            raise UpstreamError(f"upstream answered {response.status} for {path}")
        return response, data

    # -- manifests -------------------------------------------------------------------------

    def _fetch_manifest(self, name: str, reference: str) -> tuple[str, Digest, bytes] | None:
        # Every type is accepted: the cache keeps what upstream stores, and negotiates
        # with its own clients itself.
        found = self._read(f"/v2/{name}/manifests/{reference}", name, 4 << 20 | 1,
                           {"Accept": _DEFAULT_ACCEPT})
        if found is None:
            return None
        response, data = found
        media_type = (response.getheader("Content-Type") or "").split(";")[0].strip()
        if media_type not in MANIFEST_MEDIA_TYPES:
            try:
                media_type = json.loads(data).get("mediaType") or ""
            except (ValueError, AttributeError):
                media_type = ""
        if media_type not in MANIFEST_MEDIA_TYPES:
            raise UpstreamError(f"upstream sent a manifest of unknown type {media_type!r}")
        digest = Digest("sha256:" + hashlib.sha256(data).hexdigest())
        if ":" in reference and reference != digest:
            raise UpstreamError(f"upstream sent a manifest that does not match {reference}")
        return media_type, digest, data

    async def refresh_manifest(self, name: str, reference: str) -> bool:
        """Fetch `reference` from upstream into the cache; False when upstream has no such
        manifest. Unreachable upstream: UpstreamError (the cache may still answer)."""
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, self._fetch_manifest, name, reference)
        if found is None:
            return False
        media_type, digest, data = found
        # Stored from the event loop's thread: concurrent requests for one tag must not
        # write its file at the same time (write_atomic's temporary name is per process).
        tag = None if ":" in reference else reference
        self._storage.put_manifest(name, digest, media_type, data, tag, None)
        return True

    def _fetch_tags(self, target: str, name: str) -> tuple[bytes, str | None] | None:
        found = self._read(target, name, 16 << 20)
        return None if found is None else (found[1], found[0].getheader("Link"))

    async def tags(self, target: str, name: str) -> tuple[bytes, str | None] | None:
        """Upstream's answer to a tag list request (`target` is the request's path and
        query): the JSON body and Link header, or None when upstream has no such
        repository."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._fetch_tags, target, name)

    # -- blobs -----------------------------------------------------------------------------

    def _fetch_blob(self, name: str, digest: Digest, download: Download) -> bool:
        """Runs in a worker thread; tells `download` (on the loop) how far it got."""
        loop = download.loop
        response, connection = self._upstream.get(f"/v2/{name}/blobs/{digest}",
                                                  f"repository:{name}:pull")
        try:
            if response.status == 404:
                return False
            if response.status != 200:
                raise UpstreamError(f"upstream answered {response.status} for {digest}")
            length = response.getheader("Content-Length")
            upload = self._storage.start_upload(name)
            try:
                fd = upload.open_for_append()
                reader = os.open(upload.data, os.O_RDONLY | os.O_CLOEXEC)
                loop.call_soon_threadsafe(download.started, reader,
                                          int(length) if length and length.isdigit() else None)
                hasher = new_hasher(digest.algorithm)
                total = 0
                try:
                    while chunk := response.read(_CHUNK):
                        hasher.update(chunk)
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view):]
                        total += len(chunk)
                        loop.call_soon_threadsafe(download.progressed, total)
                finally:
                    os.close(fd)
                if hasher.hexdigest() != digest.hex:
                    raise UpstreamError(f"upstream sent content that does not match {digest}")
                self._storage.commit_upload(upload, digest)
            except BaseException:
                self._storage.cancel_upload(upload)
                raise
            return True
        except (OSError, http.client.HTTPException) as error:
            raise UpstreamError(f"upstream: {error}") from None
        finally:
            connection.close()

    async def download(self, name: str, digest: Digest) -> Download | None:
        """Start bringing the blob into the cache (one download however many ask at once)
        and return once upstream has answered: None when it does not have the blob."""
        key = (name, digest)
        download = self._fetching.get(key)
        if download is None:
            loop = asyncio.get_running_loop()
            download = Download(loop)
            download.finished = loop.run_in_executor(None, self._fetch_blob, name, digest,
                                                     download)
            self._fetching[key] = download
            download.finished.add_done_callback(lambda _: self._fetching.pop(key, None))
            download.finished.add_done_callback(download.ended)
        await asyncio.wait([download.ready, download.finished],
                           return_when=asyncio.FIRST_COMPLETED)
        if download.finished.done():
            if not download.finished.result():   # raises the download's UpstreamError
                return None
        return download


class Download:
    """A blob on its way from upstream into the cache, readable while it arrives.

    The worker thread reports progress through the event loop; readers send what has been
    written, and hold the last byte back until the digest is verified, so that a client
    never receives a complete-looking body of bad content.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.ready: asyncio.Future[None] = loop.create_future()
        self.finished: asyncio.Future[bool] = loop.create_future()
        self.size: int | None = None
        self._reader: int | None = None
        self._written = 0
        self._readers = 0
        self._changed = asyncio.Event()

    # -- reports from the worker thread (run on the loop) ----------------------------------

    def started(self, reader: int, size: int | None) -> None:
        self._reader = reader
        self.size = size
        if not self.ready.done():
            self.ready.set_result(None)

    def progressed(self, written: int) -> None:
        self._written = written
        self._changed.set()

    def ended(self, _: object) -> None:
        self._changed.set()
        self._release()

    def _release(self) -> None:
        if self.finished.done() and self._readers == 0 and self._reader is not None:
            os.close(self._reader)
            self._reader = None

    # -- readers ---------------------------------------------------------------------------

    @property
    def streamable(self) -> bool:
        return self.size is not None and self._reader is not None

    def chunks(self) -> _Reader:
        """The blob's bytes as they arrive (raising if the download fails); the reader
        holds the file open from now until it is closed, even if never iterated."""
        return _Reader(self)


class _Reader:
    """One client's read of a Download: an async iterator of chunks with aclose()."""

    def __init__(self, download: Download) -> None:
        assert download.size is not None and download._reader is not None
        self._download = download
        self._fd = download._reader
        self._size = download.size
        self._sent = 0
        self._closed = False
        download._readers += 1

    def __aiter__(self) -> _Reader:
        return self

    async def __anext__(self) -> bytes:
        download = self._download
        while self._sent < self._size and not self._closed:
            finished = download.finished
            verified = finished.done() and finished.exception() is None and finished.result()
            available = min(download._written, self._size if verified else self._size - 1)
            if available > self._sent:
                chunk = os.pread(self._fd, min(available - self._sent, _CHUNK), self._sent)
                if not chunk:
                    raise UpstreamError("the cached download shrank")
                self._sent += len(chunk)
                return chunk
            if finished.done():
                finished.result()  # raises the download's error
                if not verified or download._written < self._size:
                    raise UpstreamError("upstream sent less than it announced")
                continue
            download._changed.clear()
            await download._changed.wait()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._download._readers -= 1
            self._download._release()
