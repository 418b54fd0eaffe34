"""Dockyard's registry server (OCI distribution spec / Docker registry API v2).

`dockyard registry serve` runs it in the CLI's own process: it is a server of its own, not
a call to the daemon. The interface:
    RegistryConfig       what to serve and how to authenticate
    build_app(config)    the request handler (ConfigError for an inconsistent config)
    run_registry(config) serve until cancelled (asyncio)
    serve(config)        run_registry in a new event loop, until SIGINT/SIGTERM
    garbage_collect(root, dry_run)   remove blobs no manifest references
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ._app import RegistryApp
from ._auth import AccessController, BasicAccess, OpenAccess, TokenAccess, TokenService
from ._gc import GcReport, garbage_collect
from ._htpasswd import Htpasswd, HtpasswdError
from ._http import HttpServer
from ._proxy import PullThrough, Upstream
from ._ratelimit import RateLimiter
from ._storage import RegistryStorage
from ._tokens import AccessPolicy, PolicyError, TokenIssuer

__all__ = ["ConfigError", "GcReport", "RegistryConfig", "build_app", "garbage_collect",
           "run_registry", "serve"]

_log = logging.getLogger("dockyard.registry")
_PURGE_INTERVAL = 600.0


class ConfigError(ValueError):
    """The configuration cannot be served; the message says why."""


@dataclass
class RegistryConfig:
    root: Path
    host: str = "127.0.0.1"
    port: int = 5000
    htpasswd: Path | None = None
    token_realm: str | None = None     # bearer-token mode: the URL of our token endpoint
    token_service: str = "dockyard-registry"
    token_ttl: int = 300
    access_policy: Path | None = None
    upload_ttl: float = 24 * 3600.0    # uploads untouched this long are removed
    fsync: bool = True
    read_only: bool = False            # refuse every write (for garbage collection)
    proxy_remote: str | None = None    # pull-through cache of this upstream registry
    proxy_username: str | None = None
    proxy_password: str | None = None
    rate_limit: float | None = None    # requests per second per client address
    access_log: bool = False           # one line per request on stderr


def build_app(config: RegistryConfig) -> RegistryApp:
    """The request handler for `config`; ConfigError when it is inconsistent."""
    storage = RegistryStorage(config.root)
    access: AccessController = OpenAccess()
    token_service = None
    token_path = "/token"
    htpasswd = None
    if config.htpasswd is not None:
        try:
            htpasswd = Htpasswd.load(config.htpasswd)
        except HtpasswdError as error:
            raise ConfigError(str(error)) from None
    if config.token_realm is not None:
        if htpasswd is None:
            raise ConfigError("--token-realm needs --htpasswd (the users the token "
                              "service authenticates)")
        parts = urlsplit(config.token_realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"--token-realm {config.token_realm!r}: expected an http(s) "
                              "URL such as http://127.0.0.1:5000/token")
        token_path = parts.path or "/"
        if token_path.startswith("/v2/") or token_path == "/v2":
            raise ConfigError("--token-realm: the token path cannot be under /v2/")
        try:
            policy = (AccessPolicy.load(config.access_policy) if config.access_policy
                      else AccessPolicy())
        except (OSError, PolicyError) as error:
            raise ConfigError(str(error)) from None
        issuer = TokenIssuer(config.token_service, config.token_ttl)
        access = TokenAccess(issuer, config.token_realm, policy)
        token_service = TokenService(issuer, htpasswd, policy)
    elif htpasswd is not None:
        access = BasicAccess(htpasswd)
    elif config.access_policy is not None:
        raise ConfigError("--access-policy applies to the token mode (--token-realm)")
    proxy = None
    if config.proxy_remote is not None:
        try:
            upstream = Upstream(config.proxy_remote, config.proxy_username,
                                config.proxy_password)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        proxy = PullThrough(storage, upstream)
    limiter = None
    if config.rate_limit is not None:
        try:
            limiter = RateLimiter(config.rate_limit)
        except ValueError as error:
            raise ConfigError(str(error)) from None
    return RegistryApp(storage, access, token_service, token_path, fsync=config.fsync,
                       read_only=config.read_only, proxy=proxy, rate_limiter=limiter)


async def run_registry(config: RegistryConfig,
                       on_ready: Callable[[str, int], None] | None = None) -> None:
    """Serve until cancelled; `on_ready(host, port)` once listening."""
    app = build_app(config)
    app.storage.purge_uploads(config.upload_ttl)
    server = HttpServer(app.handle)
    host, port = await server.listen(config.host, config.port)
    if on_ready is not None:
        on_ready(host, port)
    try:
        while True:
            await asyncio.sleep(_PURGE_INTERVAL)
            app.storage.purge_uploads(config.upload_ttl)
    finally:
        await server.close()


def serve(config: RegistryConfig, on_ready: Callable[[str, int], None] | None = None) -> None:
    """Run the registry in this thread until SIGINT or SIGTERM."""

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await run_registry(config, on_ready)

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.access_log:
        logging.getLogger("dockyard.registry.access").setLevel(logging.INFO)
    asyncio.run(main())
