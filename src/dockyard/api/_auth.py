"""The X-Registry-Auth header: registry credentials as base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from ._errors import InvalidParameter


@dataclass(frozen=True)
class AuthConfig:
    """Registry credentials, the fields of the Engine API's AuthConfig."""

    username: str = ""
    password: str = ""
    auth: str = ""
    email: str = ""
    serveraddress: str = ""
    identitytoken: str = ""
    registrytoken: str = ""


_FIELDS = frozenset(AuthConfig.__dataclass_fields__)


def decode_registry_auth(header: str | None) -> AuthConfig:
    """Decode X-Registry-Auth; empty credentials when absent, 400 when malformed.

    The docker CLI and docker-py send padded base64url; some clients send standard base64
    or drop the padding, so both alphabets and missing padding are accepted. Field names
    match case-insensitively, as Go's JSON decoder does ("Username" or "username").
    """
    if not header:
        return AuthConfig()
    text = header.strip().replace("+", "-").replace("/", "_")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise InvalidParameter(f"invalid X-Registry-Auth header: {error}") from None
    if not isinstance(decoded, dict):
        raise InvalidParameter("invalid X-Registry-Auth header: not a JSON object")
    fields: dict[str, str] = {}
    for key, value in decoded.items():
        name = key.lower()
        if name in _FIELDS and isinstance(value, str):
            fields[name] = value
    return AuthConfig(**fields)


def encode_registry_auth(auth: AuthConfig) -> str:
    """The header value a client sends (padded base64url JSON of the non-empty fields)."""
    fields = {name: getattr(auth, name) for name in sorted(_FIELDS) if getattr(auth, name)}
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()
