"""overlayfs mounts: the options, the page-size limit, and the kernel calls (ctypes).

mount(2) copies its data argument as one page, so "lowerdir=a:b:c..." of an image with
many layers does not fit when the paths are absolute. Like Docker's overlay2 (short
names under root/l/ and a mount made from inside root) and containerd (the common
prefix of the lower dirs), the options are rewritten relative to the lower dirs' common
directory and the mount is made with that as the working directory. The working
directory is per process, and the daemon is threaded: the mount runs on a short-lived
thread that first unshares its fs_struct (unshare(CLONE_FS)), so its chdir is its own.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ._errors import SnapshotError

_CLONE_FS = 0x00000200
_MNT_DETACH = 0x00000002
_PAGE_SIZE = os.sysconf("SC_PAGESIZE")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.syncfs.argtypes = [ctypes.c_int]

# Native diffs read the upper dir as the changeset: renames of lower directories must not
# become redirect xattrs (the kernel then returns EXDEV and tools copy), chmod must not make
# metadata-only copies, and no inode index is kept (Docker mounts with index=off too).
FEATURE_OPTIONS = ("index=off", "redirect_dir=off", "metacopy=off")


class Mount(NamedTuple):
    """One mount, as containerd's snapshotters describe it: mount -t type source target -o ..."""

    type: str
    source: str
    options: list[str]


def overlay_mount(lowerdirs: list[Path], upperdir: Path, workdir: Path) -> Mount:
    options = [*FEATURE_OPTIONS, "lowerdir=" + ":".join(str(p) for p in lowerdirs),
               f"upperdir={upperdir}", f"workdir={workdir}"]
    return Mount("overlay", "overlay", options)


def mount(spec: Mount, target: Path) -> None:
    """Mount spec on target, compacting the lower dirs when the options exceed a page."""
    target_path = os.path.abspath(target)  # the mount may run from another directory
    data = ",".join(spec.options)
    if len(data) < _PAGE_SIZE:
        _mount(spec.source, target_path, spec.type, data)
        return
    directory, options = compact_lowerdirs(spec.options)
    data = ",".join(options)
    if len(data) >= _PAGE_SIZE:
        raise SnapshotError(f"overlay mount options are {len(data)} bytes even with relative "
                            f"lower dirs; the kernel takes at most {_PAGE_SIZE - 1}")
    _in_directory(directory, lambda: _mount(spec.source, target_path, spec.type, data))


def clear_volatile_marker(spec: Mount) -> None:
    """A volatile mount leaves <workdir>/work/incompat/volatile/ behind, and the kernel
    refuses to mount that work dir again (volatile or not) while it is there. Called before
    mounting a snapshot that is not mounted: after a clean unmount its upper dir is whole."""
    workdir = next((o[len("workdir="):] for o in spec.options if o.startswith("workdir=")), "")
    marker = os.path.join(workdir, "work", "incompat", "volatile")
    if workdir and os.path.isdir(marker):
        import shutil

        shutil.rmtree(marker)


def mount_volatile(spec: Mount, target: Path) -> None:
    """mount() with overlay's `volatile` option where the kernel has it (5.10+)."""
    try:
        mount(Mount(spec.type, spec.source, [*spec.options, "volatile"]), target)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        mount(spec, target)  # an older kernel: without


def compact_lowerdirs(options: list[str]) -> tuple[str, list[str]]:
    """(directory, options with lowerdir= relative to it): the lower dirs' common parent."""
    lowers = next(o for o in options if o.startswith("lowerdir="))[len("lowerdir="):].split(":")
    common = os.path.commonpath([os.path.dirname(p) for p in lowers])
    relative = ":".join(os.path.relpath(p, common) for p in lowers)
    return common, [f"lowerdir={relative}" if o.startswith("lowerdir=") else o for o in options]


def unmount(target: Path) -> None:
    """Unmount target; lazily if it is busy. A target that is not mounted is left alone."""
    path = os.fsencode(os.path.abspath(target))
    if _libc.umount2(path, 0) == 0:
        return
    error = ctypes.get_errno()
    if error == errno.EBUSY and _libc.umount2(path, _MNT_DETACH) == 0:
        return
    if error in (errno.EINVAL, errno.ENOENT):
        return  # not a mount point (any more): unmounting is idempotent
    raise OSError(error, f"umount {os.fsdecode(path)}: {os.strerror(error)}")


def is_mounted_upper(upperdir: Path) -> bool:
    """Is some overlay in this mount namespace using upperdir?"""
    needle = f"upperdir={_mangle(str(upperdir))}"
    with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as lines:
        for line in lines:
            super_options = line.rsplit(" ", 1)[-1].rstrip("\n").split(",")
            if needle in super_options:
                return True
    return False


def syncfs(fd: int) -> None:
    """Flush the file system holding fd: a layer is only published once it is on disk."""
    if _libc.syncfs(fd) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"syncfs: {os.strerror(error)}")


def _mount(source: str, target: str, fstype: str, data: str) -> None:
    if _libc.mount(source.encode(), os.fsencode(target), fstype.encode(), 0,
                   os.fsencode(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"mount -t {fstype} {target}: {os.strerror(error)}")


def _in_directory(directory: str, action: Callable[[], None]) -> None:
    """Run action with directory as the working directory of this call alone."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            if _libc.unshare(_CLONE_FS) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"unshare(CLONE_FS): {os.strerror(error)}")
            os.chdir(directory)
            action()
        except BaseException as e:  # handed to the calling thread
            failure.append(e)

    thread = threading.Thread(target=run, name="dockyard-overlay-mount", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def _mangle(path: str) -> str:
    # /proc/self/mountinfo escapes these as octal (the kernel's mangle()).
    for char in "\\ \t\n,=":
        path = path.replace(char, f"\\{ord(char):03o}")
    return path
