"""What the registry client raises, with the messages Docker prints."""

from __future__ import annotations

import json


class RegistryError(Exception):
    """A registry answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int = 0, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes


class UnauthorizedError(RegistryError):
    """401/403: no or wrong credentials, or no access to the repository."""


class NotFoundError(RegistryError):
    """The manifest, blob or repository does not exist."""


class VerificationError(RegistryError):
    """Content from the registry is not what its digest or size says."""


def error_from_response(status: int, body: bytes, fallback: str) -> RegistryError:
    """The error of a registry response: its `errors` body formatted as Go's errcode does
    ("manifest unknown: manifest unknown"), else `fallback`."""
    codes: list[str] = []
    texts: list[str] = []
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("errors"), list):
        for item in doc["errors"]:
            if not isinstance(item, dict):
                continue
            code = str(item.get("code") or "UNKNOWN")
            codes.append(code)
            texts.append(f"{code.replace('_', ' ').lower()}: {item.get('message') or ''}")
    if len(texts) == 1:
        message = texts[0]
    elif texts:
        message = "errors:\n" + "".join(f"{text}\n" for text in texts)
    else:
        message = fallback
    kind: type[RegistryError] = RegistryError
    if status in (401, 403) or "UNAUTHORIZED" in codes or "DENIED" in codes:
        kind = UnauthorizedError
    elif status == 404:
        kind = NotFoundError
    return kind(message, status, tuple(codes))
