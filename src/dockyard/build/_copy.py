"""COPY and ADD into a container's root, with Docker's rules:

- a directory source copies its contents (not itself) into the destination;
- a file goes to `dest` itself, or into it when `dest` ends in "/" or is an existing
  directory; several sources need a destination ending in "/";
- new files and directories belong to root (0:0) unless --chown, and new parent
  directories are made 0755 (owned like the copied files);
- --chmod sets the mode of what is copied; times and modes are kept otherwise;
- ADD extracts a local tar archive (plain, gzip, bzip2 or xz) instead of copying it.

Paths inside the root are resolved as the container would (no symlink leads out).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass

from ..runtime.rootfs import secure_join
from ._errors import BuildError
from ._sources import Source


@dataclass(frozen=True)
class Ownership:
    uid: int = 0
    gid: int = 0


def destination(dest: str, workdir: str) -> tuple[str, bool]:
    """(absolute destination, whether it names a directory by a trailing "/")."""
    is_dir = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    return posixpath.normpath(dest), is_dir


def copy_sources(root: str, sources: list[Source], dest: str, dest_is_dir: bool,
                 owner: Ownership, mode: int | None, command: str,
                 extract_archives: bool = False) -> None:
    if len(sources) > 1 and not dest_is_dir:
        raise BuildError(f"When using {command} with more than one source file, the "
                         "destination must be a directory and end with a /")
    for source in sources:
        if extract_archives and not source.is_dir and _is_archive(source.host_path):
            _make_dirs(root, dest, owner)
            _extract(source.host_path, root, dest)
            continue
        if source.is_dir:
            target = _make_dirs(root, dest, owner)
            _copy_tree(source.host_path, target, owner, mode)
            continue
        host_dest = secure_join(root, dest)
        if dest_is_dir or (os.path.isdir(host_dest) and not os.path.islink(host_dest)):
            parent = _make_dirs(root, dest, owner)
            target = os.path.join(parent, posixpath.basename(source.relative))
        else:
            parent = _make_dirs(root, posixpath.dirname(dest), owner)
            target = os.path.join(parent, posixpath.basename(dest))
        _copy_entry(source.host_path, target, owner, mode)


def write_file(root: str, dest: str, content: bytes, owner: Ownership, mode: int | None) -> None:
    """COPY <<EOF /file: a file made from a heredoc."""
    parent = _make_dirs(root, posixpath.dirname(dest), owner)
    target = os.path.join(parent, posixpath.basename(dest))
    _remove_existing(target, False)
    with open(target, "wb") as f:
        f.write(content)
    os.chmod(target, 0o644 if mode is None else mode)
    os.lchown(target, owner.uid, owner.gid)


def _make_dirs(root: str, path: str, owner: Ownership) -> str:
    """The host path of a directory inside root, made (0755, owned by owner) if missing."""
    parts = [p for p in path.split("/") if p]
    current = "/"
    for part in parts:
        current = posixpath.join(current, part)
        host = secure_join(root, current)
        if os.path.lexists(host) and not os.path.isdir(host):
            raise BuildError(f"failed to copy files: mkdir {current}: not a directory")
        if not os.path.exists(host):
            # host is resolved inside root (a symlink may have led elsewhere in it): make
            # each missing directory on the way there.
            walked = root
            for piece in os.path.relpath(host, root).split(os.sep):
                walked = os.path.join(walked, piece)
                if not os.path.lexists(walked):
                    os.mkdir(walked, 0o755)
                    os.chmod(walked, 0o755)
                    os.lchown(walked, owner.uid, owner.gid)
    return secure_join(root, "/" + "/".join(parts))


def _remove_existing(target: str, is_dir: bool) -> None:
    if not os.path.lexists(target):
        return
    if os.path.isdir(target) and not os.path.islink(target):
        if is_dir:
            return
        raise BuildError(f"cannot overwrite directory {target} with non-directory")
    os.unlink(target)


def _copy_entry(source: str, target: str, owner: Ownership, mode: int | None) -> None:
    st = os.lstat(source)
    if stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(target) or os.path.islink(target):
            _remove_existing(target, True)
            os.mkdir(target)
        os.chmod(target, stat.S_IMODE(st.st_mode) if mode is None else mode)
    elif stat.S_ISLNK(st.st_mode):
        _remove_existing(target, False)
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(st.st_mode):
        _remove_existing(target, False)
        shutil.copyfile(source, target, follow_symlinks=False)
        os.chmod(target, stat.S_IMODE(st.st_mode) if mode is None else mode)
    else:
        return  # devices, fifos and sockets are not part of a build context
    os.lchown(target, owner.uid, owner.gid)
    if not stat.S_ISDIR(st.st_mode):
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_tree(source: str, target: str, owner: Ownership, mode: int | None) -> None:
    directories: list[tuple[str, str]] = []
    for directory, dirs, files in os.walk(source):
        dirs.sort()
        relative = os.path.relpath(directory, source)
        host_dir = target if relative == "." else os.path.join(target, relative)
        if relative != ".":
            _copy_entry(directory, host_dir, owner, mode)
            directories.append((directory, host_dir))
        for name in sorted(files) + [d for d in dirs if os.path.islink(
                os.path.join(directory, d))]:
            _copy_entry(os.path.join(directory, name), os.path.join(host_dir, name), owner,
                        mode)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(directory, d))]
    for directory, host_dir in reversed(directories):
        st = os.lstat(directory)
        os.utime(host_dir, ns=(st.st_atime_ns, st.st_mtime_ns))


def _is_archive(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def _extract(archive: str, root: str, dest: str) -> None:
    """Each member is written under the parent directory resolved inside root, by its
    base name only: no name or symlink in the archive can lead out of the root."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = posixpath.normpath("/" + member.name).lstrip("/")
                if not name or name == ".":
                    continue
                inside = posixpath.join(dest, name)
                parent = _make_dirs(root, posixpath.dirname(inside), Ownership())
                host = os.path.join(parent, posixpath.basename(inside))
                if os.path.lexists(host) and not (member.isdir() and os.path.isdir(host)):
                    if os.path.isdir(host) and not os.path.islink(host):
                        shutil.rmtree(host)
                    else:
                        os.unlink(host)
                if member.islnk():
                    link = posixpath.join(dest, posixpath.normpath("/" + member.linkname))
                    os.link(secure_join(root, link), host)
                    continue
                member.name = posixpath.basename(inside)
                tar.extract(member, parent, set_attrs=True, numeric_owner=True)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BuildError(f"ADD failed: extracting {os.path.basename(archive)}: {e}") from None


def ownership(root: str, chown: str) -> Ownership:
    """--chown=user[:group], names looked up in the image's /etc/passwd and /etc/group."""
    user, _, group = chown.partition(":")
    group = group or user
    uid = _lookup_id(root, "/etc/passwd", user, 2, "user")
    gid = _lookup_id(root, "/etc/group", group, 2, "group")
    return Ownership(uid, gid)


def _lookup_id(root: str, path: str, name: str, column: int, what: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        with open(secure_join(root, path), encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if len(fields) > column and fields[0] == name:
                    return int(fields[column])
    except (OSError, ValueError):
        pass
    raise BuildError(f"unable to convert uid/gid chown string to host mapping: can't find "
                     f"{'uid' if what == 'user' else 'gid'} for {what} {name}: no such "
                     f"{what}: {name}")
