"""Digests that name layers: diff IDs and chain IDs (OCI image spec, config.md)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def check_digest(value: str, what: str) -> str:
    """value, if it is a sha256 digest in canonical form; ValueError otherwise (digests
    become directory names, so nothing else may get that far)."""
    if not isinstance(value, str) or not _DIGEST.fullmatch(value):
        raise ValueError(f"{what} must be 'sha256:' and 64 lowercase hex digits, not {value!r}")
    return value


def chain_id(parent_chain_id: str | None, diff_id: str) -> str:
    """ChainID(L0) = DiffID(L0);
    ChainID(L0|...|Ln) = sha256(ChainID(L0|...|Ln-1) + " " + DiffID(Ln))."""
    check_digest(diff_id, "diff ID")
    if parent_chain_id is None:
        return diff_id
    check_digest(parent_chain_id, "parent chain ID")
    return "sha256:" + hashlib.sha256(f"{parent_chain_id} {diff_id}".encode()).hexdigest()


def chain_ids(diff_ids: Iterable[str]) -> list[str]:
    """The chain ID of every prefix of an image's layer list (rootfs.diff_ids order)."""
    chain: list[str] = []
    for diff_id in diff_ids:
        chain.append(chain_id(chain[-1] if chain else None, diff_id))
    return chain
