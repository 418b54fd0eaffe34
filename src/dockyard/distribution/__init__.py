"""Distribution: the registry client (pull, push, auth) and, in server/, the registry.

What the engine may call:

- Registries(insecure_registries, registry_mirrors): the endpoints of each registry,
  clients with their credentials and tokens, shared keep-alive connections;
  `Registries.attempt(domain, credentials, operation, push=...)` runs an operation on
  the first endpoint that works (mirrors, HTTPS, HTTP for insecure registries).
- pull(client, repository, reference, store, platform, handler) -> PulledImage, with a
  PullHandler that shows progress and unpacks layers in order.
- push(client, repository, tag, store, target, manifests, handler, mount_sources).
- get_manifest, list_tags, RegistryClient.login (for /auth and /distribution).
- GunzipReader: a gzip layer inflated in large steps for the snapshotter.
- Credentials, Endpoint, and the errors: RegistryError, UnauthorizedError, NotFoundError,
  VerificationError, TransportError.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from ._challenge import Challenge, parse_challenges, repository_scope
from ._client import Credentials, Endpoint, RegistryClient
from ._endpoints import endpoints, is_insecure, registry_host
from ._errors import NotFoundError, RegistryError, UnauthorizedError, VerificationError
from ._gunzip import GunzipReader
from ._http import ConnectionPool, TransportError
from ._pull import PROGRESS_INTERVAL, PulledImage, PullHandler, pull, short_id
from ._push import PushedImage, PushHandler, push
from ._requests import get_manifest, list_tags

T = TypeVar("T")

__all__ = [
    "PROGRESS_INTERVAL",
    "Challenge",
    "Credentials",
    "Endpoint",
    "GunzipReader",
    "NotFoundError",
    "PullHandler",
    "PulledImage",
    "PushHandler",
    "PushedImage",
    "RegistryClient",
    "RegistryError",
    "Registries",
    "TransportError",
    "UnauthorizedError",
    "VerificationError",
    "endpoints",
    "get_manifest",
    "is_insecure",
    "list_tags",
    "parse_challenges",
    "pull",
    "push",
    "registry_host",
    "repository_scope",
    "short_id",
]


class Registries:
    """The registries the daemon talks to, with the settings of its configuration."""

    def __init__(self, insecure_registries: list[str] | None = None,
                 registry_mirrors: list[str] | None = None) -> None:
        self.insecure_registries = list(insecure_registries or [])
        self.registry_mirrors = list(registry_mirrors or [])
        self.pool = ConnectionPool()
        self._lock = threading.Lock()
        self._clients: dict[tuple[Endpoint, Credentials], RegistryClient] = {}
        self._working: dict[str, str] = {}  # domain -> the registry URL that answered last

    def endpoints(self, domain: str, push: bool = False) -> list[Endpoint]:
        found = endpoints(domain, self.insecure_registries, self.registry_mirrors, push)
        preferred = self._working.get(domain)
        if preferred:
            # Mirrors keep their place; among the registry's own URLs the last good first.
            found.sort(key=lambda e: (not e.mirror, e.url != preferred))
        return found

    def client(self, endpoint: Endpoint, credentials: Credentials) -> RegistryClient:
        with self._lock:
            key = (endpoint, credentials)
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = RegistryClient(endpoint, credentials, self.pool)
            return client

    def attempt(self, domain: str, credentials: Credentials,
                operation: Callable[[RegistryClient], T], push: bool = False) -> T:
        """Run `operation` against the endpoints of `domain` in order until one works: a
        registry that cannot be reached, or a mirror that fails, passes to the next."""
        candidates = self.endpoints(domain, push)
        last: Exception | None = None
        for position, endpoint in enumerate(candidates):
            is_last = position == len(candidates) - 1
            client = self.client(endpoint, Credentials() if endpoint.mirror else credentials)
            try:
                client.ping()
                result = operation(client)
            except TransportError as error:
                last = error
                if is_last:
                    break
                continue
            except RegistryError as error:
                if endpoint.mirror and not is_last:
                    last = error
                    continue
                raise
            if not endpoint.mirror:
                self._working[domain] = endpoint.url
            return result
        assert last is not None
        raise RegistryError(str(last)) from None

    def close(self) -> None:
        self.pool.close()
