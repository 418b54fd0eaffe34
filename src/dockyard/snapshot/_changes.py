"""`docker diff`: what a snapshot's upper dir changed relative to its image layers.

Docker's rules for overlay2 (moby pkg/archive changes()): walking the upper dir in name
order, a whiteout is 'D'; an opaque directory that hid something below is 'D' (deleted
and made anew: its entries follow as additions); anything else is 'C' if the lower
layers show something at that path, else 'A'; a directory copied up unchanged (same
mode, size and mtime as below) is not listed, but the parent of any 'A' or 'D' is, as
'C', just before it.

Where Docker asks each lower layer with os.Stat, the lookup here resolves the path the
way overlayfs does (a whiteout or a non-directory in a layer hides everything below it,
an opaque directory hides the layers under it), so a name deleted in one layer and
recreated by the container is an addition, as `ls` would suggest.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import NamedTuple

from ._export import is_opaque, is_whiteout

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Change(NamedTuple):
    kind: str  # 'A' added, 'C' changed, 'D' deleted (docker diff's letters)
    path: str  # absolute in the container: '/etc/hosts'


def overlay_changes(lowers: list[Path], upper: Path) -> list[Change]:
    """The changes of upper over lowers (topmost layer first)."""
    walk = _ChangeWalk(lowers)
    fd = os.open(upper, _DIR_FLAGS)
    try:
        walk.directory(fd, "", under_opaque=False)
    finally:
        os.close(fd)
    return walk.changes


class _ChangeWalk:
    def __init__(self, lowers: list[Path]) -> None:
        self._lowers = [str(p) for p in lowers]
        self.changes: list[Change] = []
        self._changed_dirs: set[str] = set()

    def directory(self, dir_fd: int, prefix: str, under_opaque: bool) -> None:
        for name in sorted(os.listdir(dir_fd), key=os.fsencode):
            path = f"{prefix}/{name}"
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # gone since listed: the container is running
            if not stat.S_ISDIR(st.st_mode):
                self._record(path, st, under_opaque, opaque=False)
                continue
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as e:
                if e.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                    continue
                raise
            try:
                opaque = is_opaque(fd)
                self._record(path, st, under_opaque, opaque)
                self.directory(fd, path, under_opaque or opaque)
            finally:
                os.close(fd)

    def _record(self, path: str, st: os.stat_result, under_opaque: bool, opaque: bool) -> None:
        below = None if under_opaque else _lower_stat(self._lowers, path)
        if is_whiteout(st) or (opaque and below is not None):
            kind = "D"
        elif below is None:
            kind = "A"
        elif (stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(below.st_mode)
              and _same_directory(st, below)):
            return  # copied up on the way to something below it, not itself changed
        else:
            kind = "C"
        if stat.S_ISDIR(st.st_mode):
            self._changed_dirs.add(path)
        if kind in ("A", "D"):
            parent = path.rsplit("/", 1)[0]
            if parent and parent not in self._changed_dirs:
                self.changes.append(Change("C", parent))
                self._changed_dirs.add(parent)
        self.changes.append(Change(kind, path))


def _same_directory(upper: os.stat_result, lower: os.stat_result) -> bool:
    # Docker's sameFsTime: equal, or the same second with one side lacking nanoseconds
    # (tar keeps whole seconds).
    up_s, up_ns = divmod(upper.st_mtime_ns, 1_000_000_000)
    low_s, low_ns = divmod(lower.st_mtime_ns, 1_000_000_000)
    same_time = up_s == low_s and (up_ns == low_ns or up_ns == 0 or low_ns == 0)
    return (upper.st_mode == lower.st_mode and upper.st_size == lower.st_size and same_time)


def _lower_stat(lowers: list[str], path: str) -> os.stat_result | None:
    """What the lower layers (topmost first) show at path, resolved as overlayfs does."""
    parts = path.strip("/").split("/")
    for layer in lowers:
        current = layer
        opaque_above = False
        found: os.stat_result | None = None
        for depth, part in enumerate(parts):
            current = f"{current}/{part}"
            try:
                st = os.lstat(current)  # every component before it was a real directory
            except (FileNotFoundError, NotADirectoryError):
                break
            if is_whiteout(st):
                return None  # deleted in this layer: nothing below shows through
            if depth == len(parts) - 1:
                found = st
            elif not stat.S_ISDIR(st.st_mode):
                return None  # a file or symlink here hides the whole path below
            elif is_opaque(current):
                opaque_above = True
        if found is not None:
            return found
        if opaque_above:
            return None  # an opaque directory on the way hides the layers under this one
    return None
