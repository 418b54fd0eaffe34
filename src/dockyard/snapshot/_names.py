"""Member names of layer tarballs: normalisation, escape refusal and whiteout markers.

Pure functions, no file system access: the applier decides with these what a member means
before anything is written.
"""

from __future__ import annotations

import posixpath
from enum import Enum
from typing import NamedTuple

from ._errors import LayerError

ROOT = "."
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
# AUFS kept its bookkeeping (.wh..wh.plnk, .wh..wh.aufs, .wh..wh.orph) in the layer; old
# images still carry it. It is not content.
AUFS_META_PREFIX = ".wh..wh."


def normalize_name(name: str) -> str:
    """The in-layer path of a member name, as Docker computes it: relative, clean, '.' for root.

    Docker cleans the name lexically with the leading '/' kept (so '/../x' becomes '/x'),
    joins it to the layer directory and refuses the member only if the result is outside:
    a leading '/' is therefore stripped ('/etc/x' lands on 'etc/x') while '../x' or 'a/../../x'
    is refused.
    """
    if "\x00" in name:
        raise LayerError(f"{name!r}: NUL in member name")
    if name.startswith("/"):
        cleaned = posixpath.normpath("/" + name.lstrip("/")).lstrip("/") or ROOT
    else:
        cleaned = posixpath.normpath(name) if name else ROOT
    if cleaned == ".." or cleaned.startswith("../"):
        raise LayerError(f"{name!r}: path escapes the layer")
    return cleaned


def split(path: str) -> tuple[str, str]:
    """(parent, base) of a normalised path; the parent of a top-level name is ROOT."""
    parent, base = posixpath.split(path)
    return parent or ROOT, base


def ancestors(path: str) -> list[str]:
    """The directories above a normalised path, outermost first, ROOT excluded."""
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


class Marker(Enum):
    """What a member is, as far as whiteouts are concerned."""

    CONTENT = "content"  # an ordinary file, directory, link or node
    WHITEOUT = "whiteout"  # .wh.<name>: <name> from lower layers is deleted
    OPAQUE = "opaque"  # .wh..wh..opq: the directory hides everything below it
    AUFS_META = "aufs-meta"  # AUFS bookkeeping: skipped


class Classified(NamedTuple):
    marker: Marker
    path: str  # CONTENT: the member; WHITEOUT: the deleted path; OPAQUE: the directory


def classify(path: str) -> Classified:
    """Interpret whiteout markers in a normalised member path.

    A '.wh.' prefix is only meaningful on the last component: a directory named like a
    whiteout cannot exist in an image, so a member below one is refused rather than
    created as a visible '.wh.x' directory (except AUFS metadata, which is skipped).
    """
    if path == ROOT:
        return Classified(Marker.CONTENT, ROOT)
    parent, base = split(path)
    for component in path.split("/")[:-1]:
        if component.startswith(AUFS_META_PREFIX):
            return Classified(Marker.AUFS_META, path)
        if component.startswith(WHITEOUT_PREFIX):
            raise LayerError(f"{path!r}: member below a whiteout entry")
    if base == OPAQUE_MARKER:
        return Classified(Marker.OPAQUE, parent)
    if base.startswith(AUFS_META_PREFIX):
        return Classified(Marker.AUFS_META, path)
    if base.startswith(WHITEOUT_PREFIX):
        deleted = base[len(WHITEOUT_PREFIX):]
        if deleted in ("", ".", ".."):
            raise LayerError(f"{path!r}: whiteout of an invalid name")
        return Classified(Marker.WHITEOUT, deleted if parent == ROOT else f"{parent}/{deleted}")
    return Classified(Marker.CONTENT, path)
