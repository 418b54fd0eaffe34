"""A snapshot's upper dir as an OCI layer tarball (what `docker commit` and `docker diff` see).

overlayfs' upper dir is already the changeset: whiteouts (0/0 character devices) become
'.wh.<name>' entries and opaque directories get a '.wh..wh..opq' entry, as Docker's
overlay2 writes them. The walk is sorted by name, so the same tree gives the same bytes.

The upper dir belonged to a container, which may still be running and may swap a file
for a symlink at any moment: everything is reached through directory descriptors with
O_NOFOLLOW, and a regular file's header comes from fstat of the descriptor its content
is read from.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

from ._names import OPAQUE_MARKER, WHITEOUT_PREFIX
from ._writer import OVERLAY_OPAQUE_XATTR

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# overlayfs' own bookkeeping is not content; a host's SELinux label is not the image's.
_SKIPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(target: int | str) -> bool:
    """Does the directory (a descriptor, or a path whose last component is not followed)
    carry overlayfs' opaque mark?"""
    try:
        value = os.getxattr(target, OVERLAY_OPAQUE_XATTR, follow_symlinks=isinstance(target, int))
        return value == b"y"
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP):
            return False
        raise


_BLOCK = tarfile.BLOCKSIZE
_CHUNK = 1 << 20


def export_upper(upper: Path) -> Iterator[bytes]:
    """The tar stream of an upper dir, in chunks of at most about a megabyte."""
    root_fd = os.open(upper, _DIR_FLAGS)
    try:
        yield from _Exporter().directory(root_fd, "")
        yield b"\0" * (2 * _BLOCK)  # end of archive (no record padding, like Go's writer)
    finally:
        os.close(root_fd)


class _Exporter:
    """Headers come from tarfile (PAX where needed: long names, xattrs, big ids); file
    contents are streamed here, so a large file is never held in memory whole."""

    def __init__(self) -> None:
        self._links: dict[tuple[int, int], str] = {}  # (dev, ino) -> first path seen

    def directory(self, dir_fd: int, prefix: str) -> Iterator[bytes]:
        """The entries of one directory (sorted), recursing into subdirectories."""
        for name in sorted(os.listdir(dir_fd), key=os.fsencode):
            path = f"{prefix}{name}"
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed since listed (a running container)
            if is_whiteout(st):
                yield _encode(_header(f"{prefix}{WHITEOUT_PREFIX}{name}", st, tarfile.REGTYPE,
                                      mode=0o600))
            elif stat.S_ISDIR(st.st_mode):
                yield from self._subdirectory(dir_fd, name, path)
            elif stat.S_ISREG(st.st_mode):
                yield from self._regular(dir_fd, name, path)
            elif stat.S_ISLNK(st.st_mode):
                header = _header(path, st, tarfile.SYMTYPE)
                header.linkname = os.readlink(name, dir_fd=dir_fd)
                yield _encode(header, _xattrs(f"/proc/self/fd/{dir_fd}/{name}"))
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) or stat.S_ISFIFO(st.st_mode):
                link = self._hardlink(path, st)
                if link is not None:
                    yield link
                    continue
                kind = (tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else
                        tarfile.BLKTYPE if stat.S_ISBLK(st.st_mode) else tarfile.FIFOTYPE)
                header = _header(path, st, kind)
                header.devmajor, header.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                yield _encode(header, _xattrs(f"/proc/self/fd/{dir_fd}/{name}"))
            # Sockets are not layer content (Docker skips them too).

    def _subdirectory(self, dir_fd: int, name: str, path: str) -> Iterator[bytes]:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                return  # replaced since listed
            raise
        try:
            st = os.fstat(fd)
            yield _encode(_header(path, st, tarfile.DIRTYPE), _xattrs(fd))
            if is_opaque(fd):
                # Docker's form: an empty file with the directory's owner and permissions.
                marker = _header(f"{path}/{OPAQUE_MARKER}", st, tarfile.REGTYPE)
                marker.mtime = 0
                yield _encode(marker)
            yield from self.directory(fd, f"{path}/")
        finally:
            os.close(fd)

    def _regular(self, dir_fd: int, name: str, path: str) -> Iterator[bytes]:
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ELOOP):
                return  # removed or swapped for a symlink since listed
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return
            link = self._hardlink(path, st)
            if link is not None:
                yield link
                return
            header = _header(path, st, tarfile.REGTYPE)
            header.size = st.st_size
            yield _encode(header, _xattrs(fd))
            # Exactly the size in the header: a file that grows or shrinks meanwhile (a
            # running container) is cut or zero-filled rather than corrupting the stream.
            remaining = st.st_size
            while remaining > 0:
                chunk = os.read(fd, min(remaining, _CHUNK))
                if not chunk:
                    chunk = b"\0" * min(remaining, _CHUNK)
                remaining -= len(chunk)
                yield chunk
            if st.st_size % _BLOCK:
                yield b"\0" * (_BLOCK - st.st_size % _BLOCK)
        finally:
            os.close(fd)

    def _hardlink(self, path: str, st: os.stat_result) -> bytes | None:
        """A hard link entry when this inode was already written under another name."""
        if st.st_nlink < 2:
            return None
        key = (st.st_dev, st.st_ino)
        first = self._links.get(key)
        if first is None:
            self._links[key] = path
            return None
        header = _header(path, st, tarfile.LNKTYPE)
        header.linkname = first
        return _encode(header)


def _encode(header: tarfile.TarInfo, xattrs: dict[str, str] | None = None) -> bytes:
    if xattrs:
        header.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return header.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _header(name: str, st: os.stat_result, kind: bytes, mode: int | None = None) -> tarfile.TarInfo:
    header = tarfile.TarInfo(name)
    header.type = kind
    header.mode = stat.S_IMODE(st.st_mode) if mode is None else mode
    header.uid, header.gid = st.st_uid, st.st_gid
    header.uname = header.gname = ""  # numeric ids only: host names mean nothing in an image
    header.mtime = int(st.st_mtime)  # whole seconds, as Docker writes (and no pax mtime)
    return header


def _xattrs(target: int | str) -> dict[str, str]:
    # A descriptor is what it is; a path's last component must not be followed (and Python
    # refuses follow_symlinks=False with a descriptor).
    follow = isinstance(target, int)
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError as e:
        if e.errno == errno.ENOTSUP:
            return {}
        raise
    found = {}
    for name in sorted(names):
        if name.startswith(_SKIPPED_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(target, name, follow_symlinks=follow)
        except OSError as e:
            if e.errno == errno.ENODATA:
                continue
            raise
        # tarfile writes pax values from str; surrogateescape carries arbitrary bytes.
        found[name] = value.decode("utf-8", "surrogateescape")
    return found
