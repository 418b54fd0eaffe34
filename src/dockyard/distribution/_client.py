"""One registry endpoint spoken to over the HTTP API v2: authentication (anonymous,
basic, bearer tokens from the challenge of `GET /v2/`) and the requests pull and push
make. Thread-safe: the threads of one pull share a client, its tokens and its pool.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

from ._challenge import Challenge, parse_challenges, repository_scope
from ._errors import RegistryError, UnauthorizedError, error_from_response
from ._http import Body, ConnectionPool, Response, TransportError

_TOKEN_MIN_LIFETIME = 60  # seconds, as docker/distribution assumes when none is given
_USER_AGENT = "dockyard/0.1 (registry client)"


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""  # an OAuth refresh token from a login
    registry_token: str = ""  # a bearer token given directly

    def __bool__(self) -> bool:
        return bool(self.username or self.identity_token or self.registry_token)


@dataclass(frozen=True)
class Endpoint:
    """Where to reach a registry: base URL ("https://host:port"), whether to check its
    certificate, and whether it is a mirror (pulls only)."""

    url: str
    verify: bool = True
    mirror: bool = False

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


@dataclass
class _Token:
    value: str
    expires: float


class RegistryClient:
    def __init__(self, endpoint: Endpoint, credentials: Credentials,
                 pool: ConnectionPool) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self.pool = pool
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._pinged = False
        self._tokens: dict[tuple[str, ...], _Token] = {}
        self._token_lock = threading.Lock()

    # -- authentication ---------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/: learn how the registry wants to be authenticated. Raises
        TransportError when it cannot be reached."""
        with self._lock:
            if self._pinged:
                return
            with self.pool.request("GET", f"{self.endpoint.url}/v2/",
                                   {"User-Agent": _USER_AGENT},
                                   verify=self.endpoint.verify) as response:
                response.read()
                if response.status == 401:
                    for challenge in parse_challenges(response.header("WWW-Authenticate")):
                        if challenge.scheme in ("basic", "bearer"):
                            self._challenge = challenge
                            break
                elif response.status >= 500 or response.status == 404:
                    raise RegistryError(f"{self.endpoint.url}/v2/: unexpected status "
                                        f"{response.status} {response.reason}",
                                        response.status)
            self._pinged = True

    def login(self) -> str:
        """Check the credentials (POST /auth): a token for no particular scope, or the
        basic challenge answered. Raises UnauthorizedError when refused."""
        self.ping()
        url = f"{self.endpoint.url}/v2/"
        challenge = self._challenge
        if challenge is None:
            return "Login Succeeded"
        if challenge.scheme == "bearer":
            self._token(())
            return "Login Succeeded"
        with self.pool.request("GET", url, self._auth_headers(()),
                               verify=self.endpoint.verify) as response:
            response.read()
            if response.status == 401:
                raise UnauthorizedError(f"login attempt to {url} failed with status: 401 "
                                        "Unauthorized", 401)
        return "Login Succeeded"

    def _auth_headers(self, scopes: tuple[str, ...]) -> dict[str, str]:
        headers = {"User-Agent": _USER_AGENT}
        challenge = self._challenge
        if challenge is None:
            return headers
        if challenge.scheme == "basic":
            if self.credentials.username:
                pair = f"{self.credentials.username}:{self.credentials.password}"
                headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            headers["Authorization"] = "Bearer " + self._token(scopes)
        return headers

    def _token(self, scopes: tuple[str, ...]) -> str:
        if self.credentials.registry_token:
            return self.credentials.registry_token
        key = tuple(sorted(scopes))
        # One fetch at a time: the threads of a pull that all need the same token wait for
        # the first one to get it, then reuse it.
        with self._token_lock:
            token = self._tokens.get(key)
            if token is None or token.expires <= time.monotonic():
                token = self._tokens[key] = self._fetch_token(key)
            return token.value

    def _fetch_token(self, scopes: tuple[str, ...]) -> _Token:
        assert self._challenge is not None
        realm = self._challenge.realm
        if not realm:
            raise UnauthorizedError("bearer challenge without a realm", 401)
        service = self._challenge.params.get("service", "")
        headers = {"User-Agent": _USER_AGENT}
        if self.credentials.identity_token:
            form = {"grant_type": "refresh_token", "client_id": "dockyard",
                    "refresh_token": self.credentials.identity_token,
                    "service": service, "scope": " ".join(scopes)}
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            method, url, body = "POST", realm, urlencode(form).encode()
        else:
            query = [("service", service)] if service else []
            query += [("scope", scope) for scope in scopes]
            query.append(("client_id", "dockyard"))
            if self.credentials.username:
                query.append(("account", self.credentials.username))
                pair = f"{self.credentials.username}:{self.credentials.password}"
                headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
            separator = "&" if "?" in realm else "?"
            method, url, body = "GET", f"{realm}{separator}{urlencode(query)}", None
        try:
            with self.pool.request(method, url, headers, body,
                                   verify=self.endpoint.verify) as response:
                data = response.read()
                status = response.status
        except TransportError as error:
            raise RegistryError(f"fetching an authentication token: {error}") from None
        if status in (401, 403):
            raise UnauthorizedError(error_from_response(
                status, data, "unauthorized: incorrect username or password").args[0], status)
        if status != 200:
            raise RegistryError(f"token server {realm} answered {status}", status)
        try:
            doc = json.loads(data)
            value = doc.get("token") or doc.get("access_token")
            lifetime = int(doc.get("expires_in") or _TOKEN_MIN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0
        if not isinstance(value, str) or not value:
            raise RegistryError(f"token server {realm} sent no token")
        # Renewed a little before it runs out, so a token never expires mid-request.
        return _Token(value, time.monotonic() + max(lifetime, _TOKEN_MIN_LIFETIME) - 10)

    # -- requests ---------------------------------------------------------------------------

    @contextmanager
    def request(self, method: str, repository: str, path: str, *, actions: str = "pull",
                headers: Mapping[str, str] | None = None, body: Body = None,
                extra_scopes: tuple[str, ...] = (), url: str | None = None,
                follow_redirects: bool = True) -> Iterator[Response]:
        """A request to /v2/<repository>/<path> (or to `url`, an upload location) with the
        credentials the registry asked for. A 401 is raised as UnauthorizedError, with the
        message Docker gives ("no basic auth credentials" when none were given)."""
        self.ping()
        scopes = (repository_scope(repository, actions), *extra_scopes)
        target = url or f"{self.endpoint.url}/v2/{repository}/{path}"
        # A bearer token the registry no longer takes (revoked, expired early) is fetched
        # again once, for requests whose body can be sent again.
        attempts = 2 if self._challenge is not None and self._challenge.scheme == "bearer" \
            and not self.credentials.registry_token and (body is None or isinstance(
                body, bytes)) else 1
        for attempt in range(attempts):
            sent = {**self._auth_headers(scopes), **(headers or {})}
            with self.pool.request(method, target, sent, body, verify=self.endpoint.verify,
                                   follow_redirects=follow_redirects) as response:
                if response.status == 401 and attempt + 1 < attempts:
                    response.read()
                    with self._token_lock:
                        self._tokens.pop(tuple(sorted(scopes)), None)
                    continue
                if response.status == 401:
                    self._refused(response, method, target)
                yield response
                return

    def _refused(self, response: Response, method: str, target: str) -> None:
        """Raise for a 401, with the message Docker gives."""
        data = response.read()
        challenge = self._challenge
        if challenge is not None and challenge.scheme == "basic" \
                and not self.credentials.username:
            raise UnauthorizedError(f'{method.capitalize()} "{target}": no basic auth '
                                    "credentials", 401)
        raise error_from_response(401, data, "unauthorized: authentication required")

    def absolute(self, location: str) -> str:
        """An upload Location made absolute (registries may send a path)."""
        if location.startswith(("http://", "https://")):
            return location
        return self.endpoint.url + (location if location.startswith("/") else "/" + location)
