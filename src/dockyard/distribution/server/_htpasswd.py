"""htpasswd files with bcrypt entries (`htpasswd -B`), the only kind distribution accepts.

bcrypt is slow on purpose; a credential that verified once is remembered (as a hash of
user, password and entry) so that the requests after the first cost nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import bcrypt

_BCRYPT_PREFIXES = ("$2y$", "$2a$", "$2b$")


class HtpasswdError(ValueError):
    """The file cannot be used; the message names the line."""


class Htpasswd:
    def __init__(self, entries: dict[str, bytes]) -> None:
        self._entries = entries
        self._verified: set[bytes] = set()

    @classmethod
    def load(cls, path: Path) -> Htpasswd:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise HtpasswdError(f"cannot read htpasswd file {path}: {error.strerror}") from None
        entries: dict[str, bytes] = {}
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise HtpasswdError(f"{path}:{number}: expected user:hash")
            if not hashed.startswith(_BCRYPT_PREFIXES):
                raise HtpasswdError(f"{path}:{number}: the entry of {user!r} is not a bcrypt "
                                    "hash (create it with htpasswd -B)")
            entries[user] = hashed.encode()
        return cls(entries)

    @property
    def users(self) -> list[str]:
        return sorted(self._entries)

    def verify(self, user: str, password: str) -> bool:
        hashed = self._entries.get(user)
        if hashed is None:
            # Spend the same time as for a real user, so timing does not tell names apart.
            bcrypt.checkpw(b"x", b"$2y$05$" + b"." * 53)
            return False
        key = hashlib.sha256(b"\0".join((user.encode(), password.encode(), hashed))).digest()
        if key in self._verified:
            return True
        # htpasswd writes $2y$, which the bcrypt package reads as $2b$ (the same algorithm).
        normalised = b"$2b$" + hashed[4:] if hashed.startswith(b"$2y$") else hashed
        try:
            ok = bcrypt.checkpw(password.encode(), normalised)
        except ValueError:
            return False
        if ok:
            self._verified.add(key)
        return ok
