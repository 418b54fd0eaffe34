"""Pull-through cache: a read-only mirror that fetches what it lacks from an upstream
registry, verifies it, stores it, and serves it from then on.

Tags are asked upstream on every request (the cached manifest answers when upstream is
unreachable); manifests by digest and blobs come from the cache once fetched. A blob is
fetched whole into an upload session, verified, then committed like a push, so a partial
or corrupt download is never visible; requests for a blob already being fetched wait for
that one download. The upstream client is blocking (http.client) and runs in worker
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
        except OSError as error:
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
            except OSError as error:
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
        self._fetching: dict[tuple[str, Digest], asyncio.Future[bool]] = {}

    # -- manifests -------------------------------------------------------------------------

    def _fetch_manifest(self, name: str, reference: str) -> tuple[str, Digest, bytes] | None:
        # Every type is accepted: the cache keeps what upstream stores, and negotiates
        # with its own clients itself.
        response, connection = self._upstream.get(
            f"/v2/{name}/manifests/{reference}", f"repository:{name}:pull",
            {"Accept": _DEFAULT_ACCEPT})
        try:
            data = response.read(4 << 20 | 1)
        finally:
            connection.close()
        if response.status == 404:
            return None
        if response.status != 200:
            raise UpstreamError(f"upstream answered {response.status} for {name}:{reference}")
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
        tag = None if ":" in reference else reference
        self._storage.put_manifest(name, digest, media_type, data, tag, None)
        return media_type, digest, data

    async def refresh_manifest(self, name: str, reference: str) -> bool:
        """Fetch `reference` from upstream into the cache; False when upstream has no such
        manifest. Unreachable upstream: UpstreamError (the cache may still answer)."""
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(None, self._fetch_manifest, name, reference)
        return found is not None

    def _fetch_tags(self, target: str, name: str) -> tuple[bytes, str | None] | None:
        response, connection = self._upstream.get(target, f"repository:{name}:pull")
        try:
            data = response.read(16 << 20)
        finally:
            connection.close()
        if response.status == 404:
            return None
        if response.status != 200:
            raise UpstreamError(f"upstream answered {response.status} for the tags of {name}")
        return data, response.getheader("Link")

    async def tags(self, target: str, name: str) -> tuple[bytes, str | None] | None:
        """Upstream's answer to a tag list request (`target` is the request's path and
        query): the JSON body and Link header, or None when upstream has no such
        repository."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._fetch_tags, target, name)

    # -- blobs -----------------------------------------------------------------------------

    def _fetch_blob(self, name: str, digest: Digest) -> bool:
        response, connection = self._upstream.get(f"/v2/{name}/blobs/{digest}",
                                                  f"repository:{name}:pull")
        try:
            if response.status == 404:
                return False
            if response.status != 200:
                raise UpstreamError(f"upstream answered {response.status} for {digest}")
            upload = self._storage.start_upload(name)
            try:
                hasher = new_hasher(digest.algorithm)
                fd = upload.open_for_append()
                try:
                    while chunk := response.read(_CHUNK):
                        hasher.update(chunk)
                        view = memoryview(chunk)
                        while view:
                            view = view[os.write(fd, view):]
                finally:
                    os.close(fd)
                if hasher.hexdigest() != digest.hex:
                    raise UpstreamError(f"upstream sent content that does not match {digest}")
                self._storage.commit_upload(upload, digest)
            except BaseException:
                self._storage.cancel_upload(upload)
                raise
            return True
        except OSError as error:
            raise UpstreamError(f"upstream: {error}") from None
        finally:
            connection.close()

    async def fetch_blob(self, name: str, digest: Digest) -> bool:
        """Bring the blob into the cache (one download however many ask at once); False
        when upstream does not have it."""
        key = (name, digest)
        running = self._fetching.get(key)
        if running is not None:
            return await asyncio.shield(running)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.run_in_executor(None, self._fetch_blob, name,
                                                            digest)
        self._fetching[key] = future
        try:
            return await asyncio.shield(future)
        finally:
            if future.done():
                self._fetching.pop(key, None)
            else:
                future.add_done_callback(lambda _: self._fetching.pop(key, None))
