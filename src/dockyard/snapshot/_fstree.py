"""Whole-tree operations on directories the snapshotter owns: size and removal."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path


def content_size(root: Path) -> int:
    """Bytes of content under root, as Docker counts a layer or a container's SizeRw:
    every non-directory's st_size (a symlink counts its target's length), each inode once."""
    seen: set[int] = set()
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
            elif st.st_size and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def remove_tree(path: Path) -> None:
    """Remove a directory tree the snapshotter made; never follows symlinks inside it."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        os.unlink(path)
        return
    if os.geteuid() != 0:
        # Layers may hold directories without write or search permission (0555, 0000):
        # root ignores that, anyone else has to open them up first.
        _make_dirs_writable(str(path))
    shutil.rmtree(path)


def _make_dirs_writable(top: str) -> None:
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            mode = os.lstat(directory).st_mode
            os.chmod(directory, stat.S_IMODE(mode) | stat.S_IRWXU)
            entries = list(os.scandir(directory))
        except OSError:
            continue
        stack.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
