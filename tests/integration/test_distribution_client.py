"""The registry client (dockyard.distribution) against Debian's docker-registry on
127.0.0.1: chunked and monolithic uploads, mirrors tried in order with fallback, bearer
tokens from a small token server in front of the registry (token reuse, wrong password),
and the insecure HTTPS-then-HTTP fallback."""

from __future__ import annotations

import base64
import http.client
import http.server
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.distribution import (
    Credentials,
    NotFoundError,
    Registries,
    RegistryError,
    UnauthorizedError,
    list_tags,
    pull,
    push,
)
from dockyard.image import ContentStore, Descriptor, describe, mediatypes, parse_manifest
from dockyard.image.config import chain_ids
from tests.distribution_images import make_oci_layout
from tests.distribution_registry import Registry, free_port, running_registry


class Handler:
    """A PullHandler/PushHandler that records progress and unpacks nothing."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def progress(self, layer_id: str, status: str, current: int = -1, total: int = -1) -> None:
        with self.lock:
            self.messages.append((layer_id, status))

    def resolved(self, target: Descriptor, manifest: Descriptor) -> None:
        pass

    def unpacked(self, config: bytes, layers: tuple[Descriptor, ...]) -> list[bool]:
        return [False] * len(layers)

    def stage(self, position: int, layer: Descriptor, stream: Any, progress: Any) -> object:
        while stream.read(1 << 20):
            pass
        return position

    def publish(self, position: int, staged: object) -> None:
        pass

    def discard(self, staged: object) -> None:
        pass


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with running_registry(tmp_path_factory.mktemp("registry")) as instance:
        yield instance


def _store_image(store: ContentStore, tmp_path: Path, size: int = 300_000) -> Descriptor:
    """An image made offline, its blobs in `store`; returns the manifest descriptor."""
    layout = make_oci_layout(tmp_path / "layout", "1", [{"data/x": os.urandom(size)}])
    index = json.loads((layout / "index.json").read_text())
    manifest = index["manifests"][0]
    for blob in (layout / "blobs" / "sha256").iterdir():
        store.ingest(blob.read_bytes(), f"sha256:{blob.name}")
    return Descriptor(mediatypes.OCI_MANIFEST, manifest["digest"], manifest["size"])


def _push(registries: Registries, registry: Registry, repository: str, tag: str,
          store: ContentStore, target: Descriptor, chunk_size: int = 0,
          credentials: Credentials | None = None) -> Any:
    handler = Handler()
    pushed = registries.attempt(registry.host, credentials or Credentials(), lambda c: push(
        c, repository, tag, store, target, [(target, ())], handler, lambda d: [], chunk_size),
        push=True)
    return pushed, handler


def test_chunked_push_then_pull_verifies_every_blob(registry: Registry, tmp_path: Path) -> None:
    source = ContentStore(tmp_path / "source")
    target = _store_image(source, tmp_path, size=700_000)
    registries = Registries()
    pushed, handler = _push(registries, registry, "client/chunked", "c1", source, target,
                            chunk_size=128 << 10)
    assert pushed.digest == target.digest
    assert ("", "Pushed") not in handler.messages
    destination = ContentStore(tmp_path / "destination")
    pulled = registries.attempt(registry.host, Credentials(), lambda c: pull(
        c, "client/chunked", "c1", destination, None, Handler()))
    assert pulled.target.digest == target.digest and pulled.fetched
    for blob in (pulled.config, *pulled.layers):
        assert destination.read_bytes(blob.digest) == source.read_bytes(blob.digest)
    again = registries.attempt(registry.host, Credentials(), lambda c: pull(
        c, "client/chunked", "c1", destination, None, Handler()))
    assert not again.fetched
    assert registries.attempt(registry.host, Credentials(),
                              lambda c: list_tags(c, "client/chunked")) == ["c1"]
    registries.close()


def test_mirrors_are_tried_in_order_with_fallback(registry: Registry,
                                                  tmp_path: Path) -> None:
    source = ContentStore(tmp_path / "source")
    target = _store_image(source, tmp_path)
    origin = Registry(tmp_path / "origin").start()
    try:
        _push(Registries(), registry, "client/mirrored", "m1", source, target)
        _push(Registries(), origin, "client/origin-only", "o1", source, target)
        dead = f"http://127.0.0.1:{free_port()}"
        registries = Registries(registry_mirrors=[dead, f"http://{registry.host}"])
        # Found on the mirror (after the dead one), though the origin lacks it.
        store = ContentStore(tmp_path / "a")
        pulled = registries.attempt(origin.host, Credentials(), lambda c: pull(
            c, "client/mirrored", "m1", store, None, Handler()))
        assert pulled.target.digest == target.digest
        # Not on the mirror: the origin serves it.
        store = ContentStore(tmp_path / "b")
        pulled = registries.attempt(origin.host, Credentials(), lambda c: pull(
            c, "client/origin-only", "o1", store, None, Handler()))
        assert pulled.target.digest == target.digest
        with pytest.raises(NotFoundError, match="manifest unknown"):
            registries.attempt(origin.host, Credentials(), lambda c: pull(
                c, "client/nowhere", "x", store, None, Handler()))
        # Pushes never go to a mirror.
        assert all(not e.mirror for e in registries.endpoints(origin.host, push=True))
        registries.close()
    finally:
        origin.stop()


def test_insecure_registry_falls_back_from_https_to_http(registry: Registry) -> None:
    registries = Registries()
    urls = [e.url for e in registries.endpoints(registry.host)]
    assert urls == [f"https://{registry.host}", f"http://{registry.host}"]
    assert registries.attempt(registry.host, Credentials(), lambda c: c.endpoint.url) \
        == f"http://{registry.host}"
    # The one that worked is tried first next time.
    assert registries.endpoints(registry.host)[0].url == f"http://{registry.host}"
    unreachable = f"127.0.0.1:{free_port()}"
    with pytest.raises(RegistryError, match="connection refused"):
        registries.attempt(unreachable, Credentials(), lambda c: None)
    registries.close()


# -- bearer tokens ------------------------------------------------------------------------------

class TokenProxy:
    """A token server and, on the same port, a proxy to the registry that wants a bearer
    token for the repository scope of each request (what Docker Hub does)."""

    def __init__(self, upstream: Registry) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.token_requests: list[dict[str, Any]] = []
        self.issued: dict[str, set[str]] = {}
        owner = self

        class Serve(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path.startswith("/token"):
                    owner.token(self)
                    return
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                realm = f'Bearer realm="http://127.0.0.1:{owner.port}/token"'
                if self.path == "/v2/":
                    if token in owner.issued:
                        self._send(200, b"{}", {"Content-Type": "application/json"})
                    else:
                        self._send(401, b"{}", {
                            "WWW-Authenticate": f'{realm},service="fake-registry"'})
                    return
                scope = owner.scope_of(self.command, self.path)
                if scope not in owner.issued.get(token, set()):
                    self._send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":'
                                    b'"authentication required"}]}',
                               {"WWW-Authenticate": f'{realm},service="fake-registry",'
                                                    f'scope="{scope}"',
                                "Content-Type": "application/json"})
                    return
                conn = http.client.HTTPConnection(owner.upstream.host, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("authorization", "content-length")}
                headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                out = {k: v for k, v in response.getheaders()
                       if k.lower() not in ("content-length", "transfer-encoding",
                                            "connection")}
                if self.command == "HEAD":
                    out["Content-Length"] = response.getheader("Content-Length") or "0"
                    self.send_response(response.status)
                    for name, value in out.items():
                        self.send_header(name, value)
                    self.end_headers()
                else:
                    self._send(response.status, data, out)
                conn.close()

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Serve)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @staticmethod
    def scope_of(method: str, path: str) -> str:
        parts = path.split("?")[0].split("/")
        marker = next(i for i, p in enumerate(parts) if p in ("manifests", "blobs", "tags"))
        actions = "pull" if method in ("GET", "HEAD") else "pull,push"
        return f"repository:{'/'.join(parts[2:marker])}:{actions}"

    def token(self, request: Any) -> None:
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(request.path).query)
        auth = request.headers.get("Authorization") or ""
        user = base64.b64decode(auth.removeprefix("Basic ")).decode() if auth else ""
        self.token_requests.append({"query": query, "user": user})
        if user != "alice:s3cret":
            request._send(401, b'{"details":"incorrect username or password"}', {})
            return
        value = f"token-{len(self.token_requests)}"
        granted = set()
        for scope in query.get("scope", []):
            granted.add(scope)
            if scope.endswith(":pull,push"):
                granted.add(scope.replace(":pull,push", ":pull"))
        self.issued[value] = granted
        request._send(200, json.dumps({"token": value, "expires_in": 300}).encode(),
                      {"Content-Type": "application/json"})

    def __enter__(self) -> TokenProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def test_bearer_tokens_from_the_challenge(registry: Registry, tmp_path: Path) -> None:
    source = ContentStore(tmp_path / "source")
    target = _store_image(source, tmp_path)
    alice = Credentials("alice", "s3cret")
    with TokenProxy(registry) as proxy:
        registries = Registries()
        client_push = registries.attempt(proxy.host, alice, lambda c: push(
            c, "client/bearer", "b1", source, target, [(target, ())], Handler(),
            lambda d: []), push=True)
        assert client_push.digest == target.digest
        push_tokens = len(proxy.token_requests)
        # One token for the push scope, reused for every request of the push.
        assert push_tokens == 1
        assert proxy.token_requests[0]["query"]["scope"] == [
            "repository:client/bearer:pull,push"]
        assert proxy.token_requests[0]["query"]["service"] == ["fake-registry"]
        store = ContentStore(tmp_path / "pulled")
        pulled = registries.attempt(proxy.host, alice, lambda c: pull(
            c, "client/bearer", "b1", store, None, Handler()))
        assert pulled.target.digest == target.digest
        assert len(proxy.token_requests) == push_tokens + 1  # the pull scope, once
        # Tokens revoked by the server: fetched again once, and the pull goes on.
        proxy.issued.clear()
        store = ContentStore(tmp_path / "pulled-again")
        registries.attempt(proxy.host, alice, lambda c: pull(
            c, "client/bearer", "b1", store, None, Handler()))
        assert len(proxy.token_requests) == push_tokens + 2
        with pytest.raises(UnauthorizedError):
            Registries().attempt(proxy.host, Credentials("alice", "wrong"), lambda c: pull(
                c, "client/bearer", "b1", ContentStore(tmp_path / "x"), None, Handler()))
        anonymous = Registries()
        with pytest.raises(UnauthorizedError):
            anonymous.attempt(proxy.host, Credentials(), lambda c: pull(
                c, "client/bearer", "b1", ContentStore(tmp_path / "y"), None, Handler()))
        assert registries.attempt(proxy.host, alice, lambda c: c.login()) == "Login Succeeded"
        registries.close()


def test_descriptor_helpers_used_by_the_tests_are_consistent(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "s")
    target = _store_image(store, tmp_path, size=1000)
    manifest = parse_manifest(store.read_bytes(target.digest))
    assert describe(store.read_bytes(target.digest), target.media_type).digest == target.digest
    assert len(chain_ids([str(d) for d in (manifest.layers[0].digest,)])) == 1
