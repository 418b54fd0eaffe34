"""API version numbers: comparison, the `/v1.NN` path prefix, and the supported range."""

from __future__ import annotations

import re

from ._errors import InvalidParameter

# The oldest API version we accept: the same floor as current dockerd (and docker-py's
# MINIMUM_DOCKER_API_VERSION), below which responses differ too much to emulate.
MIN_API_VERSION = "1.24"
# The newest API version we implement; a client asking for more gets a 400 and, like the
# docker CLI and docker-py do, is expected to negotiate down using /_ping's API-Version.
API_VERSION = "1.45"

# Docker's router accepts any run of digits and dots after "/v" (gorilla pattern
# `/v{version:[0-9.]+}`), so "/v1/..." and "/v1.2.3/..." also carry a version.
_VERSION_PREFIX = re.compile(r"^/v([0-9.]+)(/.*)$")


def _parts(version: str) -> list[int]:
    # Mirrors moby's versions.compare: a part that is not a number counts as 0.
    return [int(part) if part.isdigit() else 0 for part in version.split(".")]


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` is older than, equal to or newer than `b`."""
    left, right = _parts(a), _parts(b)
    width = max(len(left), len(right))
    left += [0] * (width - len(left))
    right += [0] * (width - len(right))
    return (left > right) - (left < right)


def split_version_prefix(path: str) -> tuple[str | None, str]:
    """("1.45", "/containers/json") for "/v1.45/containers/json"; (None, path) without."""
    match = _VERSION_PREFIX.match(path)
    if match is None:
        return None, path
    return match.group(1), match.group(2)


def check_version(requested: str, minimum: str, maximum: str) -> None:
    """Raise Docker's 400 for a version outside [minimum, maximum]."""
    if compare_versions(requested, minimum) < 0:
        raise InvalidParameter(
            f"client version {requested} is too old. Minimum supported API version is "
            f"{minimum}, please upgrade your client to a newer version")
    if compare_versions(requested, maximum) > 0:
        raise InvalidParameter(
            f"client version {requested} is too new. Maximum supported API version is "
            f"{maximum}")
