"""Filling a new volume from the image: the tree at the mount's path in the container's
root is copied into the volume with its ownership, modes, times, hard links, symlinks,
special files and (best effort) extended attributes, as Docker's copy-up does. The
volume's own directory takes the ownership and mode of the image's directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

_MAX_LINKS = 40
# overlayfs keeps its bookkeeping in these; they mean nothing outside the overlay.
_SKIPPED_XATTRS = ("trusted.overlay.", "user.overlay.")


def resolve_in_root(root: Path, path: str) -> Path | None:
    """path inside the container's root with symlinks followed as the container would see
    them (never out of root); None when it does not exist."""
    parts = [p for p in path.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        try:
            st = os.lstat(candidate)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            hops += 1
            if hops > _MAX_LINKS:
                return None
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def copy_up(source: Path, destination: Path) -> None:
    """Copy source's content into the (empty) destination directory."""
    links: dict[tuple[int, int], str] = {}
    _copy_metadata(str(source), str(destination), os.lstat(source))
    for directory, dirs, files in os.walk(source):
        relative = os.path.relpath(directory, source)
        target_dir = os.path.join(destination, relative) if relative != "." \
            else str(destination)
        for name in dirs + files:
            src = os.path.join(directory, name)
            dst = os.path.join(target_dir, name)
            st = os.lstat(src)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(dst, 0o700)
            elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in links:
                os.link(links[(st.st_dev, st.st_ino)], dst)
                continue
            elif stat.S_ISREG(mode):
                _copy_file(src, dst)
            elif stat.S_ISLNK(mode):
                os.symlink(os.readlink(src), dst)
            elif stat.S_ISFIFO(mode):
                os.mkfifo(dst, 0o600)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                os.mknod(dst, mode, st.st_rdev)
            else:
                continue  # sockets: not copied, as Docker does not
            if st.st_nlink > 1 and not stat.S_ISDIR(mode):
                links[(st.st_dev, st.st_ino)] = dst
            if not stat.S_ISDIR(mode):
                _copy_metadata(src, dst, st)
        # directories last: writing into them changes their times
    for directory, dirs, _ in os.walk(source, topdown=False):
        relative = os.path.relpath(directory, source)
        for name in dirs:
            src = os.path.join(directory, name)
            dst = os.path.join(destination, relative, name) if relative != "." \
                else os.path.join(destination, name)
            _copy_metadata(src, dst, os.lstat(src))
    _copy_metadata(str(source), str(destination), os.lstat(source))


def _copy_file(src: str, dst: str) -> None:
    with open(src, "rb") as reader, open(dst, "wb") as writer:
        size = os.fstat(reader.fileno()).st_size
        copied = 0
        try:
            while copied < size:
                sent = os.copy_file_range(reader.fileno(), writer.fileno(), size - copied)
                if sent == 0:
                    break
                copied += sent
        except OSError:
            reader.seek(copied)
            writer.seek(copied)
            while chunk := reader.read(1 << 20):
                writer.write(chunk)


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    try:
        for name in os.listxattr(src, follow_symlinks=False):
            if name.startswith(_SKIPPED_XATTRS):
                continue
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False)
    except OSError:
        pass  # best effort: a file system without xattrs still gets the data
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))  # after chown, which clears setuid
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
