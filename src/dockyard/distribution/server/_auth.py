"""Who may do what: no auth, htpasswd basic auth, or bearer tokens issued by the registry.

Each request needs a list of scopes (repository:<name>:pull for a read, pull,push for a
write, delete for a delete, registry:catalog:* for the catalog); an access controller
lets it through or answers 401 UNAUTHORIZED with the challenge Docker clients expect.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Protocol
from urllib.parse import parse_qs

from ._errors import RegistryError
from ._htpasswd import Htpasswd
from ._http import Request, Response
from ._tokens import AccessPolicy, Scope, TokenIssuer, token_grants


class AccessController(Protocol):
    async def authorize(self, request: Request, needed: list[Scope]) -> None:
        """Return when the request may proceed; raise RegistryError (401) otherwise."""


class OpenAccess:
    """No authentication: everyone may do everything."""

    async def authorize(self, request: Request, needed: list[Scope]) -> None:
        return None


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic` header; None when there is none.
    A malformed header counts as wrong credentials (empty user)."""
    header = request.header("authorization") or ""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    user, _, password = decoded.partition(":")
    return user, password


async def check_password(htpasswd: Htpasswd, user: str, password: str) -> bool:
    if not user:
        return False
    # bcrypt takes milliseconds on purpose: keep it off the event loop.
    return await asyncio.get_running_loop().run_in_executor(
        None, htpasswd.verify, user, password)


class BasicAccess:
    """htpasswd users may do everything; anybody else gets a Basic challenge."""

    def __init__(self, htpasswd: Htpasswd, realm: str = "Registry Realm") -> None:
        self._htpasswd = htpasswd
        self._challenge = [("WWW-Authenticate", f'Basic realm="{realm}"')]

    async def authorize(self, request: Request, needed: list[Scope]) -> None:
        credentials = basic_credentials(request)
        if credentials is not None and await check_password(self._htpasswd, *credentials):
            return
        raise RegistryError("UNAUTHORIZED", headers=self._challenge,
                            detail=[{"Type": s.type, "Name": s.name,
                                     "Action": ",".join(sorted(s.actions))} for s in needed]
                            or None)


class TokenAccess:
    """Bearer tokens from this registry's own token endpoint (the realm)."""

    def __init__(self, issuer: TokenIssuer, realm: str, policy: AccessPolicy) -> None:
        self._issuer = issuer
        self._realm = realm
        self._policy = policy

    def _challenge(self, needed: list[Scope], error: str | None) -> list[tuple[str, str]]:
        value = f'Bearer realm="{self._realm}",service="{self._issuer.service}"'
        if needed:
            value += ',scope="' + " ".join(str(s) for s in needed) + '"'
        if error:
            value += f',error="{error}"'
        return [("WWW-Authenticate", value)]

    async def authorize(self, request: Request, needed: list[Scope]) -> None:
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise RegistryError("UNAUTHORIZED", headers=self._challenge(needed, None))
        claims = self._issuer.verify(token.strip())
        if claims is None:
            raise RegistryError("UNAUTHORIZED", "invalid token",
                                headers=self._challenge(needed, "invalid_token"))
        missing = [scope for scope in needed if not token_grants(claims, scope)]
        account = claims.get("sub") or None
        if missing and account is not None and any(
                self._policy.grant(account, scope).actions != scope.actions
                for scope in missing):
            # A signed-in user whom the policy refuses: a new token would not help.
            raise RegistryError("DENIED", detail=[
                {"Type": s.type, "Name": s.name, "Action": ",".join(sorted(s.actions))}
                for s in missing])
        if missing:
            # distribution answers an insufficient scope with a new challenge naming the
            # scope, so that the client fetches a token for it.
            raise RegistryError("UNAUTHORIZED", headers=self._challenge(
                needed, "insufficient_scope"), detail=[
                    {"Type": s.type, "Name": s.name, "Action": ",".join(sorted(s.actions))}
                    for s in missing])

    def grants(self, request: Request, scope: Scope) -> bool:
        """Whether the request's token covers `scope` (used for cross-repository mounts)."""
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        claims = self._issuer.verify(token.strip()) if scheme.lower() == "bearer" else None
        return claims is not None and token_grants(claims, scope)


class TokenService:
    """The realm: swaps basic credentials (or none, for anonymous) for a signed token."""

    def __init__(self, issuer: TokenIssuer, htpasswd: Htpasswd, policy: AccessPolicy) -> None:
        self._issuer = issuer
        self._htpasswd = htpasswd
        self._policy = policy

    async def handle(self, request: Request) -> Response:
        if request.method == "POST":
            # The OAuth2 form (containerd's first try): grant_type=password.
            form = parse_qs((await request.body.read(1 << 16)).decode("utf-8", "replace"))
            if (form.get("grant_type") or [""])[0] != "password":
                raise RegistryError("UNSUPPORTED", "only the password grant is supported",
                                    status=400)
            credentials: tuple[str, str] | None = (
                (form.get("username") or [""])[0], (form.get("password") or [""])[0])
            scopes_text = form.get("scope", [])
        elif request.method == "GET":
            credentials = basic_credentials(request)
            scopes_text = request.query.get("scope", [])
        else:
            raise RegistryError("UNSUPPORTED")
        account = None
        if credentials is not None:
            if not await check_password(self._htpasswd, *credentials):
                raise RegistryError("UNAUTHORIZED", "invalid username or password",
                                    headers=[("WWW-Authenticate",
                                              'Basic realm="Dockyard Registry Token Service"')])
            account = credentials[0]
        scopes = []
        for text in scopes_text:
            for item in text.split():
                scope = Scope.parse(item)
                if scope is None:
                    raise RegistryError("UNSUPPORTED", f"invalid scope {item!r}", status=400)
                scopes.append(self._policy.grant(account, scope))
        token = self._issuer.issue(account, scopes)
        body = {"token": token, "access_token": token, "expires_in": self._issuer.ttl}
        return Response(200, [("Content-Type", "application/json")],
                        (json.dumps(body) + "\n").encode())
