"""Repository names and tags, validated with the distribution spec's expressions."""

from __future__ import annotations

import re

from ._errors import RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
# Many clients limit "host:port/name" to 255 characters; distribution limits the name.
MAX_NAME_LENGTH = 255


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def check_name(name: str) -> str:
    """`name` when it is a valid repository name, else NAME_INVALID."""
    if not is_valid_name(name):
        raise RegistryError("NAME_INVALID", detail={"name": name})
    return name


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None
