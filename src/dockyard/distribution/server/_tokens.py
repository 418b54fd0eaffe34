"""Bearer tokens: scopes, the access policy that grants them, and signed tokens.

The registry is its own token service (Docker's token protocol): a client that got a
`Bearer realm=...,service=...,scope=...` challenge asks the realm for a token, with basic
credentials, and presents it on every request; each request checks that the token grants
the scope it needs. Tokens are JWTs signed with HMAC-SHA256 by a key that lives only in
the server process (they are opaque to clients; restarting the server invalidates them).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ALL_ACTIONS = frozenset({"pull", "push", "delete"})


@dataclass(frozen=True)
class Scope:
    """`type:name:actions`, such as repository:library/busybox:pull,push."""

    type: str
    name: str
    actions: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Scope | None:
        kind, sep, rest = text.partition(":")
        name, sep2, actions = rest.rpartition(":")
        if not sep or not sep2 or not kind or not name:
            return None
        return cls(kind, name, frozenset(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"


class PolicyError(ValueError):
    """The access policy file is malformed; the message names the line."""


@dataclass(frozen=True)
class _Rule:
    account: str       # a user name, "*" for any authenticated user, "anonymous"
    pattern: str       # a repository name pattern (fnmatch)
    actions: frozenset[str]


class AccessPolicy:
    """Who may do what on which repositories.

    Without a file every authenticated user has every action on every repository, and
    anonymous clients have none. A file holds lines `<account> <repository-pattern>
    <actions>`: the account is a user name, `*` (any authenticated user) or `anonymous`;
    the pattern is a shell-style pattern (`team/*`); actions are `pull,push,delete` or `*`.
    """

    def __init__(self, rules: list[_Rule] | None = None) -> None:
        self._rules = rules if rules is not None else [_Rule("*", "*", ALL_ACTIONS)]

    @classmethod
    def load(cls, path: Path) -> AccessPolicy:
        rules = []
        for number, raw in enumerate(Path(path).read_text().splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 3:
                raise PolicyError(f"{path}:{number}: expected <account> <repository> "
                                  "<actions>")
            actions = ALL_ACTIONS if parts[2] == "*" else frozenset(parts[2].split(","))
            unknown = actions - ALL_ACTIONS
            if unknown:
                raise PolicyError(f"{path}:{number}: unknown action {sorted(unknown)[0]!r}")
            rules.append(_Rule(parts[0], parts[1], actions))
        return cls(rules)

    def grant(self, account: str | None, scope: Scope) -> Scope:
        """The part of `scope` that `account` (None: anonymous) may have."""
        if scope.type == "registry" and scope.name == "catalog":
            allowed = scope.actions if account is not None else frozenset()
            return Scope(scope.type, scope.name, allowed & {"*"})
        if scope.type != "repository":
            return Scope(scope.type, scope.name, frozenset())
        granted: set[str] = set()
        for rule in self._rules:
            if rule.account == "anonymous":
                applies = account is None
            else:
                applies = account is not None and rule.account in ("*", account)
            if applies and fnmatch.fnmatchcase(scope.name, rule.pattern):
                granted |= rule.actions
        wanted = ALL_ACTIONS if "*" in scope.actions else scope.actions
        return Scope(scope.type, scope.name, frozenset(wanted & granted))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenIssuer:
    """Signs and checks this registry's tokens."""

    def __init__(self, service: str, ttl: int = 300, key: bytes | None = None) -> None:
        self.service = service
        self.ttl = ttl
        self._key = key or secrets.token_bytes(32)

    def issue(self, account: str | None, scopes: list[Scope]) -> str:
        now = int(time.time())
        claims = {"iss": "dockyard-registry", "sub": account or "", "aud": self.service,
                  "iat": now, "nbf": now - 5, "exp": now + self.ttl,
                  "jti": secrets.token_hex(8),
                  "access": [{"type": s.type, "name": s.name, "actions": sorted(s.actions)}
                             for s in scopes if s.actions]}
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{header}.{payload}.{self._sign(f'{header}.{payload}')}"

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())

    def verify(self, token: str) -> dict[str, Any] | None:
        """The claims of a valid, unexpired token of this service, else None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        if not hmac.compare_digest(self._sign(f"{parts[0]}.{parts[1]}"), parts[2]):
            return None
        try:
            claims = json.loads(_unb64(parts[1]))
        except ValueError:
            return None
        now = time.time()
        if not isinstance(claims, dict) or claims.get("aud") != self.service:
            return None
        if not claims.get("nbf", 0) <= now < claims.get("exp", 0):
            return None
        return claims


def token_grants(claims: dict[str, Any], needed: Scope) -> bool:
    """Whether the token's access list covers every action of `needed`."""
    have: set[str] = set()
    for entry in claims.get("access", []):
        if entry.get("type") == needed.type and entry.get("name") == needed.name:
            have.update(entry.get("actions", []))
    return "*" in have or needed.actions <= have
