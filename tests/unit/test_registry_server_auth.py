"""Registry server auth: htpasswd (bcrypt), the access policy, tokens."""

from __future__ import annotations

import time
from pathlib import Path

import bcrypt
import pytest

from dockyard.distribution.server._htpasswd import Htpasswd, HtpasswdError
from dockyard.distribution.server._tokens import (
    AccessPolicy,
    PolicyError,
    Scope,
    TokenIssuer,
    token_grants,
)


def _entry(user: str, password: str, prefix: bytes = b"$2y$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4))
    return f"{user}:{(prefix + hashed[4:]).decode()}"


def test_htpasswd_bcrypt_entries(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text(f"# users\n{_entry('alice', 's3cret')}\n\n{_entry('bob', 'pw', b'$2b$')}\n")
    users = Htpasswd.load(path)
    assert users.users == ["alice", "bob"]
    assert users.verify("alice", "s3cret")
    assert users.verify("alice", "s3cret")          # the remembered answer
    assert not users.verify("alice", "wrong")
    assert users.verify("bob", "pw")
    assert not users.verify("carol", "pw")


def test_htpasswd_rejects_other_hashes(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text("alice:$apr1$abc$def\n")
    with pytest.raises(HtpasswdError, match="bcrypt"):
        Htpasswd.load(path)
    path.write_text("no colon here\n")
    with pytest.raises(HtpasswdError, match=":1"):
        Htpasswd.load(path)
    with pytest.raises(HtpasswdError, match="cannot read"):
        Htpasswd.load(tmp_path / "missing")


def _scope(text: str) -> Scope:
    scope = Scope.parse(text)
    assert scope is not None
    return scope


def test_default_policy() -> None:
    policy = AccessPolicy()
    granted = policy.grant("alice", _scope("repository:x:pull,push"))
    assert granted.actions == {"pull", "push"}
    assert policy.grant(None, _scope("repository:x:pull")).actions == set()
    assert policy.grant("alice", _scope("registry:catalog:*")).actions == {"*"}
    assert policy.grant(None, _scope("registry:catalog:*")).actions == set()


def test_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "policy"
    path.write_text("alice team/* *\n* public/* pull  # every user\nanonymous public/* pull\n")
    policy = AccessPolicy.load(path)
    assert policy.grant("alice", _scope("repository:team/app:pull,push,delete")).actions == {
        "pull", "push", "delete"}
    assert policy.grant("bob", _scope("repository:team/app:pull")).actions == set()
    assert policy.grant("bob", _scope("repository:public/x:pull,push")).actions == {"pull"}
    assert policy.grant(None, _scope("repository:public/x:pull")).actions == {"pull"}
    assert policy.grant(None, _scope("repository:team/x:pull")).actions == set()
    path.write_text("alice team/* fly\n")
    with pytest.raises(PolicyError, match="fly"):
        AccessPolicy.load(path)


def test_tokens_grant_their_scopes_only() -> None:
    issuer = TokenIssuer("svc")
    token = issuer.issue("alice", [_scope("repository:a:pull"),
                                   Scope("repository", "b", frozenset())])
    claims = issuer.verify(token)
    assert claims is not None and claims["sub"] == "alice"
    assert token_grants(claims, _scope("repository:a:pull"))
    assert not token_grants(claims, _scope("repository:a:pull,push"))
    assert not token_grants(claims, _scope("repository:b:pull"))


def test_tokens_are_checked() -> None:
    issuer = TokenIssuer("svc")
    token = issuer.issue("alice", [_scope("repository:a:pull")])
    header, payload, signature = token.split(".")
    assert issuer.verify(f"{header}.{payload}.{signature[:-2]}xx") is None
    assert issuer.verify("garbage") is None
    assert TokenIssuer("svc").verify(token) is None          # another key
    assert TokenIssuer("other").verify(token) is None
    expired = TokenIssuer("svc", ttl=-10)
    assert expired.verify(expired.issue("alice", [])) is None
    assert issuer.verify(token) is not None
    assert time.time() < issuer.verify(token)["exp"]  # type: ignore[index]


def test_rate_limiter() -> None:
    from dockyard.distribution.server._errors import RegistryError
    from dockyard.distribution.server._ratelimit import RateLimiter

    limiter = RateLimiter(2)            # 2 per second, bursts of 4
    for _ in range(4):
        limiter.check("10.0.0.1", now=100.0)
    with pytest.raises(RegistryError) as info:
        limiter.check("10.0.0.1", now=100.0)
    assert info.value.code == "TOOMANYREQUESTS" and info.value.status == 429
    assert ("Retry-After", "1") in info.value.headers
    limiter.check("10.0.0.2", now=100.0)     # another client has its own bucket
    limiter.check("10.0.0.1", now=100.5)     # half a second later: one more
    with pytest.raises(RegistryError):
        limiter.check("10.0.0.1", now=100.5)
    with pytest.raises(ValueError):
        RateLimiter(0)
