"""Content digests ("sha256:<hex>"), validated as go-digest does."""

from __future__ import annotations

import hashlib
import re

from dockyard.image.errors import DigestError

# Hex lengths of the algorithms go-digest knows; anything else is "unsupported".
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_ALGORITHM = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*")
_HEX = re.compile(r"[a-f0-9]+")

SHA256 = "sha256"


class Digest(str):
    """A validated digest string; compares and hashes as the plain string it is.

    Being a `str` lets digests go straight into JSON and dict keys, while construction
    guarantees the value is well formed (which is what makes it safe as a file name).
    """

    __slots__ = ()

    def __new__(cls, value: str) -> Digest:
        algorithm, sep, hexpart = value.partition(":")
        if not sep or not _ALGORITHM.fullmatch(algorithm) or not hexpart:
            raise DigestError("invalid checksum digest format")
        length = _HEX_LENGTHS.get(algorithm)
        if length is None:
            raise DigestError("unsupported digest algorithm")
        if len(hexpart) != length:
            raise DigestError("invalid checksum digest length")
        if not _HEX.fullmatch(hexpart):
            raise DigestError("invalid checksum digest format")
        return super().__new__(cls, value)

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def hex(self) -> str:
        return self.partition(":")[2]


def parse_digest(value: str) -> Digest:
    """Validate `value` as a digest; raises DigestError with go-digest's message."""
    return Digest(value)


def new_hasher(algorithm: str) -> hashlib._Hash:
    if algorithm not in _HEX_LENGTHS:
        raise DigestError("unsupported digest algorithm")
    return hashlib.new(algorithm)


def sha256_of(data: bytes) -> Digest:
    """The sha256 digest of `data`, as "sha256:<hex>"."""
    return Digest(f"sha256:{hashlib.sha256(data).hexdigest()}")
