"""Writing a layer's members into a directory without ever leaving it.

Every path is reached from a file descriptor on the layer root, one component at a time,
with O_NOFOLLOW|O_DIRECTORY: a symlink (or anything but a directory) in the way is an
error, never something to follow. Final components are created with the *at() calls
relative to their parent's descriptor, exclusively (O_EXCL, mknod, symlink, link fail on
an existing name), so nothing already there is ever written through either. The applier
(_apply) has already refused unsafe names; this is the second line.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ._compression import Readable
from ._errors import LayerError
from ._names import ROOT, split

log = logging.getLogger(__name__)

OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1 << 20
_DIR_CACHE_SIZE = 64


@dataclass(frozen=True)
class Attrs:
    """The metadata a member carries, numeric as in the tar (uname/gname are ignored)."""

    mode: int  # permission bits incl. setuid, setgid, sticky
    uid: int
    gid: int
    mtime_ns: int
    xattrs: dict[str, bytes] = field(default_factory=dict)


class LayerWriter(Protocol):
    """What the applier asks of a layer directory; paths are normalised and relative."""

    def implicit_dir(self, path: str) -> None: ...
    def directory(self, path: str, attrs: Attrs, exists: bool) -> None: ...
    def regular(self, path: str, attrs: Attrs, data: Readable, size: int) -> None: ...
    def symlink(self, path: str, target: str, attrs: Attrs) -> None: ...
    def hardlink(self, path: str, target: str) -> None: ...
    def node(self, path: str, kind: int, major: int, minor: int, attrs: Attrs) -> None: ...
    def whiteout(self, path: str, uid: int, gid: int) -> None: ...
    def opaque(self, path: str) -> None: ...
    def remove(self, path: str) -> None: ...
    def dir_mtime(self, path: str, mtime_ns: int) -> None: ...


class DirWriter:
    """The real LayerWriter: a directory on disk, reached only through dir descriptors."""

    def __init__(self, root: Path) -> None:
        self._root_fd = os.open(root, _DIR_FLAGS)
        # Descriptors of directories reached recently: tars list a directory's entries
        # together, and walking from the root for each member costs more than writing it.
        # Only remove() can replace a directory (everything else creates exclusively), so
        # it empties the cache; a descriptor never points outside the layer anyway.
        self._dir_cache: dict[str, int] = {}
        self._pins: dict[str, int] = {}  # paths whose cached descriptor is in use

    def close(self) -> None:
        self._forget_dirs()
        if self._root_fd >= 0:
            os.close(self._root_fd)
            self._root_fd = -1

    def _forget_dirs(self) -> None:
        assert not self._pins, "a cached directory is still in use"
        for fd in self._dir_cache.values():
            os.close(fd)
        self._dir_cache.clear()

    def __enter__(self) -> DirWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- walking ---------------------------------------------------------------------------

    @contextmanager
    def _dir(self, path: str) -> Iterator[int]:
        """A descriptor on an existing directory of the layer, reached without following."""
        if path == ROOT:
            yield self._root_fd
            return
        fd = self._dir_cache.pop(path, None)  # and back in at the end: least recently used
        if fd is None:
            fd = self._open_dir(path)
        self._dir_cache[path] = fd
        self._pins[path] = self._pins.get(path, 0) + 1
        try:
            yield fd
        finally:
            self._pins[path] -= 1
            if not self._pins[path]:
                del self._pins[path]
            self._trim_dirs()

    def _trim_dirs(self) -> None:
        # Never close a descriptor still in use (hardlink() holds two at once).
        for path in [p for p in self._dir_cache if p not in self._pins]:
            if len(self._dir_cache) <= _DIR_CACHE_SIZE:
                break
            os.close(self._dir_cache.pop(path))

    def _open_dir(self, path: str) -> int:
        fd = os.dup(self._root_fd)
        try:
            for component in path.split("/"):
                if component in ("", ".", ".."):
                    raise LayerError(f"{path!r}: unnormalised path")  # the applier's bug
                try:
                    next_fd = os.open(component, _DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise LayerError(f"{path!r}: {component!r} is not a directory "
                                         "(symlinks are never followed)") from e
                    raise
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextmanager
    def _parent(self, path: str) -> Iterator[tuple[int, str]]:
        parent, base = split(path)
        with self._dir(parent) as fd:
            yield fd, base

    # -- members ---------------------------------------------------------------------------

    def implicit_dir(self, path: str) -> None:
        # A parent the tar never listed: Docker creates it 0755, owned by the daemon.
        with self._parent(path) as (parent, name):
            os.mkdir(name, 0o755, dir_fd=parent)
            os.chmod(name, 0o755, dir_fd=parent)  # whatever the umask; just made: no symlink

    def directory(self, path: str, attrs: Attrs, exists: bool) -> None:
        if path == ROOT:
            # Docker leaves the layer root as it made it; the entry carries nothing else.
            return
        with self._parent(path) as (parent, name):
            if not exists:
                os.mkdir(name, 0o700, dir_fd=parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            try:
                _apply_fd_attrs(fd, attrs, set_times=False)  # mtime once its content is in
            finally:
                os.close(fd)

    def regular(self, path: str, attrs: Attrs, data: Readable, size: int) -> None:
        with self._parent(path) as (parent, name):
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=parent)
            try:
                remaining = size
                while remaining > 0:
                    chunk = data.read(min(remaining, _COPY_CHUNK))
                    if not chunk:
                        raise LayerError(f"{path!r}: unexpected end of data")
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                    remaining -= len(chunk)
                _apply_fd_attrs(fd, attrs, set_times=True)
            finally:
                os.close(fd)

    def symlink(self, path: str, target: str, attrs: Attrs) -> None:
        with self._parent(path) as (parent, name):
            os.symlink(target, name, dir_fd=parent)
            os.chown(name, attrs.uid, attrs.gid, dir_fd=parent, follow_symlinks=False)
            _set_xattrs_at(parent, name, attrs.xattrs)
            os.utime(name, ns=(attrs.mtime_ns, attrs.mtime_ns), dir_fd=parent,
                     follow_symlinks=False)

    def hardlink(self, path: str, target: str) -> None:
        # The link shares the target's inode and so its metadata; the header's own copy of
        # it is the same when a real tool wrote the layer, and is not re-applied.
        with self._parent(target) as (source_parent, source_name), \
                self._parent(path) as (parent, name):
            os.link(source_name, name, src_dir_fd=source_parent, dst_dir_fd=parent,
                    follow_symlinks=False)

    def node(self, path: str, kind: int, major: int, minor: int, attrs: Attrs) -> None:
        with self._parent(path) as (parent, name):
            os.mknod(name, kind | 0o600, os.makedev(major, minor), dir_fd=parent)
            # Just made by mknod (which fails on an existing name): not a symlink.
            os.chown(name, attrs.uid, attrs.gid, dir_fd=parent)
            os.chmod(name, attrs.mode, dir_fd=parent)
            _set_xattrs_at(parent, name, attrs.xattrs)
            os.utime(name, ns=(attrs.mtime_ns, attrs.mtime_ns), dir_fd=parent,
                     follow_symlinks=False)

    def whiteout(self, path: str, uid: int, gid: int) -> None:
        # overlayfs' whiteout: a 0/0 character device with the deleted name.
        with self._parent(path) as (parent, name):
            os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=parent)
            os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)

    def opaque(self, path: str) -> None:
        with self._dir(path) as fd:
            os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")

    def remove(self, path: str) -> None:
        self._forget_dirs()
        with self._parent(path) as (parent, name):
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(name, dir_fd=parent)  # fd-based: does not follow symlinks
            else:
                os.unlink(name, dir_fd=parent)

    def dir_mtime(self, path: str, mtime_ns: int) -> None:
        with self._dir(path) as fd:
            os.utime(fd, ns=(mtime_ns, mtime_ns))


def _apply_fd_attrs(fd: int, attrs: Attrs, set_times: bool) -> None:
    # Order matters: chown clears setuid/setgid bits and security.capability, so mode and
    # xattrs come after it.
    os.fchown(fd, attrs.uid, attrs.gid)
    os.fchmod(fd, attrs.mode)
    for key, value in attrs.xattrs.items():
        _set_xattr(fd, key, value)
    if set_times:
        os.utime(fd, ns=(attrs.mtime_ns, attrs.mtime_ns))


def _set_xattrs_at(parent: int, name: str, xattrs: dict[str, bytes]) -> None:
    # No descriptor can be opened on a symlink or a device node without side effects, so
    # the xattr call goes through the parent's /proc link with the last component
    # unfollowed (lsetxattr).
    for key, value in xattrs.items():
        _set_xattr(f"/proc/self/fd/{parent}/{name}", key, value, follow_symlinks=False)


def _set_xattr(target: int | str, key: str, value: bytes, follow_symlinks: bool = True) -> None:
    try:
        os.setxattr(target, key, value, follow_symlinks=follow_symlinks)
    except OSError as e:
        # Docker's rule: a file system (or a privilege level) without support for an
        # attribute is not a reason to refuse the layer; anything else is.
        if e.errno not in (errno.ENOTSUP, errno.EPERM):
            raise
        log.warning("ignored xattr %s: %s", key, e.strerror)
