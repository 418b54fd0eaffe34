"""A container's filesystem from the outside: `docker diff`, `docker export` and `docker cp`
(the archive endpoints); `docker commit` and `docker import` are in engine.commit.

The files are read from (and written to) the container's merged view: its rootfs mount
while it runs, else its snapshot mounted at a temporary place for the length of the
operation, with the container's transition lock held so that a start or a removal waits
for it. Paths are resolved inside that root as the container would see them: no symlink
leads out of it (runtime.rootfs.secure_join).
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import secrets
import shutil
import stat
import tarfile
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

from ..runtime.errors import RuntimeFailure
from ..runtime.rootfs import secure_join
from ..snapshot import SnapshotError
from .errors import Conflict, EngineError, Forbidden, InvalidParameter, NotFound
from .timefmt import rfc3339

_CHUNK = 1 << 20
_KINDS = {"C": 0, "A": 1, "D": 2}  # docker diff's letters -> the API's Kind

# Go's os.FileMode type bits (what X-Docker-Container-Path-Stat's mode carries).
_GO_DIR = 1 << 31
_GO_SYMLINK = 1 << 27
_GO_DEVICE = 1 << 26
_GO_PIPE = 1 << 25
_GO_SOCKET = 1 << 24
_GO_SETUID = 1 << 23
_GO_SETGID = 1 << 22
_GO_CHARDEV = 1 << 21
_GO_STICKY = 1 << 20

_FILE_PLACEHOLDERS = ("etc/hostname", "etc/hosts", "etc/resolv.conf")
_DIR_PLACEHOLDERS = ("dev", "proc", "sys")


class ArchiveService:
    def __init__(self, engine: Any) -> None:
        self.options = engine.options
        self.containers = engine.containers
        self.snapshots = engine.snapshots
        self.events = engine.events
        self._busy: set[str] = set()  # containers whose snapshot we have mounted
        self._busy_lock = threading.Lock()

    # -- docker diff ------------------------------------------------------------------------

    def changes(self, ref: str) -> list[dict[str, Any]]:
        record = self.containers.store.get(ref)
        try:
            found = self.snapshots.changes(record["Id"])
            hidden = placeholders(self.snapshots, record["Id"])
        except SnapshotError as e:
            raise EngineError(f"reading the container's changes: {e}") from None
        return [{"Path": change.path, "Kind": _KINDS[change.kind]} for change in found
                if change.path.lstrip("/") not in hidden]
    @contextmanager
    def _root(self, ref: str) -> Iterator[tuple[dict[str, Any], str]]:
        """(record, host path of the container's merged "/") for the operation's length."""
        record = self.containers.store.get(ref)
        container_id = record["Id"]
        rootfs = self.containers.store.dir_of(container_id) / "rootfs"
        if record["State"]["Running"] and os.path.ismount(rootfs):
            yield record, str(rootfs)
            return
        with self._busy_lock:
            if container_id in self._busy:
                raise Conflict(f"container {container_id} is busy: another copy, export or "
                               "commit has its filesystem mounted; try again")
            self._busy.add(container_id)
        try:
            # Held while mounted: a start (which mounts the same upper dir) or a removal
            # (which deletes it) waits for us.
            with self.containers.transition(container_id):
                record = self.containers.store.get(container_id)
                if record["State"]["Running"]:
                    if not os.path.ismount(rootfs):
                        # Mounting its upper dir a second time would corrupt it.
                        raise Conflict(f"container {container_id} is running but its root "
                                       "file system is not mounted")
                    yield record, str(rootfs)
                    return
                target = self.options.exec_root / "archive-mounts" / \
                    f"{container_id[:12]}-{secrets.token_hex(4)}"
                target.mkdir(parents=True)
                try:
                    try:
                        self.snapshots.mount(container_id, target)
                    except (SnapshotError, OSError) as e:
                        raise EngineError(f"mounting the container's filesystem: {e}") \
                            from None
                    try:
                        yield record, str(target)
                    finally:
                        self.snapshots.unmount(target)
                finally:
                    try:
                        target.rmdir()
                    except OSError:
                        pass
        finally:
            with self._busy_lock:
                self._busy.discard(container_id)

    # -- docker cp ----------------------------------------------------------------------------

    def stat(self, ref: str, path: str) -> dict[str, Any]:
        """HEAD /containers/{id}/archive: what X-Docker-Container-Path-Stat describes."""
        with self._root(ref) as (_, root):
            return _stat_path(root, path, ref)

    def archive(self, ref: str, path: str, sink: IO[bytes]) -> None:
        """GET /containers/{id}/archive: a tar of path, its top entry named by path's
        basename (the symlink itself for a symlink), written to sink."""
        with self._root(ref) as (record, root):
            resolved, absolute = _resolve(root, path)
            _stat_path(root, path, ref)
            name = posixpath.basename(absolute.rstrip("/")) or "."
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                _add_tree(tar, resolved, name, top=True)
            self.events.emit("container", "archive-path", record["Id"],
                             {"name": record["Name"].lstrip("/"), "path": path})

    def extract(self, ref: str, path: str, source: IO[bytes], no_overwrite_dir_non_dir: bool,
                copy_uid_gid: bool) -> None:
        """PUT /containers/{id}/archive: the uploaded tar unpacked into directory path."""
        with self._root(ref) as (record, root):
            if record["HostConfig"].get("ReadonlyRootfs"):
                raise Forbidden("container rootfs is marked read-only")
            try:
                destination = secure_join(root, path)
            except RuntimeFailure as e:
                raise InvalidParameter(str(e)) from None
            try:
                st = os.lstat(destination)
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound(f"Could not find the file {path} in container {ref}") from None
            if not stat.S_ISDIR(st.st_mode):
                raise InvalidParameter("extraction point is not a directory")
            inside = _inside(root, destination)
            try:
                with tarfile.open(fileobj=source, mode="r|*") as tar:
                    _Extractor(root, inside, no_overwrite_dir_non_dir, copy_uid_gid).run(tar)
            except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
                raise InvalidParameter(f"extracting the archive: {e}") from None
            self.events.emit("container", "extract-to-dir", record["Id"],
                             {"name": record["Name"].lstrip("/"), "path": path})

    # -- docker export --------------------------------------------------------------------

    def export(self, ref: str, sink: IO[bytes]) -> None:
        with self._root(ref) as (record, root):
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                links: dict[tuple[int, int], str] = {}
                for entry in _sorted_entries(root):
                    _add_tree(tar, os.path.join(root, entry), entry, links=links)
            self.events.emit("container", "export", record["Id"],
                             {"name": record["Name"].lstrip("/")})


# -- paths and stat ---------------------------------------------------------------------------


def _resolve(root: str, path: str) -> tuple[str, str]:
    """(host path, absolute container path) as moby's ResolvePath: the directory part
    resolved in the container's scope, the last component kept as it is (a symlink is
    the link), a trailing "/" or "/." kept (and then followed)."""
    absolute = posixpath.normpath(posixpath.join("/", path))
    if absolute.startswith("//"):
        absolute = "/" + absolute.lstrip("/")
    if path == "." or path.endswith("/."):
        absolute = absolute.rstrip("/") + "/."
    elif path.endswith("/") and absolute != "/":
        absolute += "/"
    directory, base = absolute[:absolute.rindex("/") + 1], absolute[absolute.rindex("/") + 1:]
    try:
        resolved_dir = secure_join(root, directory)
    except RuntimeFailure as e:
        raise InvalidParameter(str(e)) from None
    if not base:
        return resolved_dir, absolute
    return os.path.join(resolved_dir, base), absolute


def _stat_path(root: str, path: str, container: str) -> dict[str, Any]:
    resolved, absolute = _resolve(root, path)
    try:
        st = os.lstat(resolved)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"Could not find the file {path} in container {container}") from None
    link_target = ""
    if stat.S_ISLNK(st.st_mode):
        try:
            full = secure_join(root, absolute)
        except RuntimeFailure as e:
            raise InvalidParameter(str(e)) from None
        link_target = _inside(root, full)
    name = posixpath.basename(absolute.rstrip("/")) or "/"
    return {"name": name, "size": st.st_size, "mode": go_file_mode(st.st_mode),
            "mtime": rfc3339(st.st_mtime_ns).replace(".000000000Z", "Z"),
            "linkTarget": link_target}


def _inside(root: str, host_path: str) -> str:
    relative = os.path.relpath(host_path, root)
    return "/" if relative == "." else "/" + relative


def go_file_mode(mode: int) -> int:
    """A stat mode as Go's os.FileMode (what `docker cp` reads)."""
    result = mode & 0o777
    if stat.S_ISDIR(mode):
        result |= _GO_DIR
    elif stat.S_ISLNK(mode):
        result |= _GO_SYMLINK
    elif stat.S_ISBLK(mode):
        result |= _GO_DEVICE
    elif stat.S_ISCHR(mode):
        result |= _GO_DEVICE | _GO_CHARDEV
    elif stat.S_ISFIFO(mode):
        result |= _GO_PIPE
    elif stat.S_ISSOCK(mode):
        result |= _GO_SOCKET
    if mode & stat.S_ISUID:
        result |= _GO_SETUID
    if mode & stat.S_ISGID:
        result |= _GO_SETGID
    if mode & stat.S_ISVTX:
        result |= _GO_STICKY
    return result


def encode_path_stat(info: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(info, separators=(",", ":")).encode()).decode()


# -- writing tars -----------------------------------------------------------------------------


def _sorted_entries(directory: str) -> list[str]:
    try:
        return sorted(os.listdir(directory), key=os.fsencode)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _add_tree(tar: tarfile.TarFile, host_path: str, arcname: str, top: bool = False,
              links: dict[tuple[int, int], str] | None = None) -> None:
    """host_path (not followed if a symlink) and, for a directory, all below it."""
    links = {} if links is None else links
    try:
        st = os.lstat(host_path)
    except FileNotFoundError:
        if top:
            raise
        return  # gone since listed: the container runs
    info = tarfile.TarInfo(arcname)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = st.st_mtime
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for entry in _sorted_entries(host_path):
            child = f"{arcname}/{entry}" if arcname not in ("", ".") else \
                (f"./{entry}" if arcname == "." else entry)
            _add_tree(tar, os.path.join(host_path, entry), child, links=links)
        return
    if st.st_nlink > 1 and not stat.S_ISDIR(mode):
        key = (st.st_dev, st.st_ino)
        if key in links:
            info.type = tarfile.LNKTYPE
            info.linkname = links[key]
            tar.addfile(info)
            return
        links[key] = arcname
    if stat.S_ISREG(mode):
        try:
            fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        with os.fdopen(fd, "rb") as handle:
            info.size = os.fstat(fd).st_size
            tar.addfile(info, handle)
    elif stat.S_ISLNK(mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(host_path)
        tar.addfile(info)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        tar.addfile(info)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
    # sockets: not archived (as Docker)


# -- extracting tars --------------------------------------------------------------------------


class _Extractor:
    """Unpacks a tar stream into a directory of a container's root, every path resolved in
    the container's scope, so no entry and no symlink in the container leads outside."""

    def __init__(self, root: str, directory: str, no_overwrite_dir_non_dir: bool,
                 copy_uid_gid: bool) -> None:
        self.root = root
        self.directory = directory  # absolute in the container
        self.no_overwrite = no_overwrite_dir_non_dir
        self.copy_uid_gid = copy_uid_gid
        self.dir_times: list[tuple[str, float]] = []

    def run(self, tar: tarfile.TarFile) -> None:
        for member in tar:
            self.member(tar, member)
        for path, mtime in reversed(self.dir_times):
            try:
                os.utime(path, (mtime, mtime), follow_symlinks=False)
            except OSError:
                pass

    def _host(self, name: str) -> tuple[str, str]:
        """(host path, path in the container) of an archive name."""
        relative = posixpath.normpath("/" + name).lstrip("/")
        inside = posixpath.join(self.directory, relative)
        parent, base = posixpath.split(inside)
        try:
            host_parent = secure_join(self.root, parent)
        except RuntimeFailure as e:
            raise InvalidParameter(str(e)) from None
        return (os.path.join(host_parent, base) if base else host_parent), inside

    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if posixpath.normpath("/" + member.name) == "/":
            return  # the extraction directory itself
        if member.type in (tarfile.XHDTYPE, tarfile.XGLTYPE):
            return
        host, inside = self._host(member.name)
        os.makedirs(os.path.dirname(host), exist_ok=True)
        try:
            existing = os.lstat(host)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            is_dir = stat.S_ISDIR(existing.st_mode)
            if self.no_overwrite and is_dir and not member.isdir():
                raise InvalidParameter(f"cannot overwrite directory \"{inside}\" with "
                                       f"non-directory \"{member.name}\"")
            if self.no_overwrite and not is_dir and member.isdir():
                raise InvalidParameter(f"cannot overwrite non-directory \"{inside}\" with "
                                       f"directory \"{member.name}\"")
            if not (is_dir and member.isdir()):
                if is_dir:
                    shutil.rmtree(host)
                else:
                    os.unlink(host)
        if member.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                os.mkdir(host, 0o700)
        elif member.isreg():
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                data = tar.extractfile(member)
                if data is not None:
                    shutil.copyfileobj(data, out, _CHUNK)
        elif member.issym():
            os.symlink(member.linkname, host)
        elif member.islnk():
            target, _ = self._host(member.linkname)
            os.link(target, host, follow_symlinks=False)
            return  # same inode: its owner, mode and times are the target's
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = stat.S_IFCHR if member.ischr() else (
                stat.S_IFBLK if member.isblk() else stat.S_IFIFO)
            os.mknod(host, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        else:
            return  # other types (sparse files, GNU extensions) are not Docker's either
        uid, gid = (member.uid, member.gid) if self.copy_uid_gid else (0, 0)
        os.lchown(host, uid, gid)
        if not member.issym():
            os.chmod(host, member.mode & 0o7777)
        if member.isdir():
            self.dir_times.append((host, member.mtime))
        else:
            os.utime(host, (member.mtime, member.mtime), follow_symlinks=False)


# -- upper-dir placeholders -------------------------------------------------------------------

def placeholders(snapshots: Any, container_id: str) -> set[str]:
    """What the runtime made in the upper dir only to mount over it (Docker keeps these
    in the container's "-init" layer, so neither `docker diff` nor a commit shows them):
    the empty /etc/hosts, /etc/hostname, /etc/resolv.conf and the empty /dev, /proc,
    /sys; /etc too when it holds nothing else. Names relative to "/"."""
    upper = snapshots.snapshot(container_id)["upperdir"]
    found: set[str] = set()
    for name in _FILE_PLACEHOLDERS:
        try:
            st = os.lstat(os.path.join(upper, name))
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size == 0:
            found.add(name)
    for name in _DIR_PLACEHOLDERS:
        path = os.path.join(upper, name)
        if os.path.isdir(path) and not os.path.islink(path) and not os.listdir(path):
            found.add(name)
    etc = os.path.join(upper, "etc")
    if found & set(_FILE_PLACEHOLDERS) and not os.path.islink(etc) and all(
            f"etc/{entry}" in found for entry in os.listdir(etc)):
        found.add("etc")
    return found

# -- the container's root ---------------------------------------------------------------
