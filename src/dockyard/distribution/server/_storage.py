"""The registry's storage under --root: blobs, repositories and upload sessions.

Layout:
    blobs/<alg>/<hex>                              every blob and manifest, content-addressed
                                                   (the image layer's ContentStore)
    repositories/<name>/_layers/<alg>/<hex>        the blobs linked into a repository
    repositories/<name>/_manifests/revisions/<alg>/<hex>   a manifest of the repository;
                                                   holds its media type
    repositories/<name>/_manifests/tags/<tag>      holds the digest the tag points at
    repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  the descriptor (JSON) of a
                                                   manifest whose subject is <alg>:<hex>
    uploads/<uuid>/data, uploads/<uuid>/repository an upload in progress

Repository names' components start with [a-z0-9], so the `_` directories never clash with
a nested repository. Every file appears by an atomic rename or link: a reader sees a blob,
a link or a tag whole or not at all, and an upload becomes visible only once its digest
has been verified. Uploads live apart and are removed when they expire.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dockyard.atomicfile import write_atomic
from dockyard.image.content import ContentStore
from dockyard.image.digest import Digest, new_hasher

from ._names import is_valid_name

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Upload:
    """An upload session: a data file appended to in order, hashed as it grows.

    The running hash lives in memory only; after a restart of the server (or when another
    process appended) it is recomputed from the file when the upload is finished.
    """

    def __init__(self, directory: Path, name: str, upload_id: str) -> None:
        self.directory = directory
        self.name = name
        self.id = upload_id
        self.data = directory / "data"
        self._hasher: Any = None
        self._hashed = 0

    @property
    def size(self) -> int:
        try:
            return self.data.stat().st_size
        except FileNotFoundError:
            return 0

    def open_for_append(self) -> int:
        return os.open(self.data, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def append(self, fd: int, chunks: list[bytes], writeback: bool = False) -> None:
        """Write and hash `chunks` (runs in a worker thread: hashlib and write release the
        GIL, so this overlaps the event loop's reading of the next chunks). `writeback`
        starts writing the new bytes to disk now, so that the fsync before the commit has
        little left to wait for."""
        start = os.fstat(fd).st_size
        hasher = self._hasher_at(start)
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                written = os.write(fd, view)
                if hasher is not None:
                    hasher.update(view[:written])
                self._hashed += written
                view = view[written:]
        if writeback:
            _start_writeback(fd, start, os.fstat(fd).st_size - start)

    def _hasher_at(self, offset: int) -> Any:
        if self._hasher is None and offset == 0:
            self._hasher = new_hasher("sha256")
            self._hashed = 0
        if self._hasher is not None and self._hashed != offset:
            self._hasher = None  # someone else wrote: rehash at the end
        return self._hasher

    def digest(self, algorithm: str) -> Digest:
        """The digest of the data (from the running hash when it covers the file)."""
        size = self.size
        if algorithm == "sha256" and self._hasher is not None and self._hashed == size:
            return Digest(f"sha256:{self._hasher.hexdigest()}")
        hasher = new_hasher(algorithm)
        with open(self.data, "rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        return Digest(f"{algorithm}:{hasher.hexdigest()}")


class RegistryStorage:
    """Blobs, repositories, tags, referrers and uploads of one registry root."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = ContentStore(self.root)
        self._repositories = self.root / "repositories"
        self._uploads = self.root / "uploads"
        self._repositories.mkdir(parents=True, exist_ok=True)
        self._uploads.mkdir(parents=True, exist_ok=True)
        self._live: dict[str, Upload] = {}

    # -- blobs -----------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> Path:
        return self.blobs.path(digest)

    def blob_size(self, digest: Digest) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def put_blob_bytes(self, data: bytes, digest: Digest) -> None:
        """Store a small blob (a manifest) given whole; the store verifies the digest."""
        self.blobs.ingest(data, expected=digest, size=len(data))

    # -- repositories ----------------------------------------------------------------------

    def _repo(self, name: str) -> Path:
        if not is_valid_name(name):  # the name becomes a path: never trust it unchecked
            raise ValueError(f"invalid repository name {name!r}")
        return self._repositories / name

    def _layer_link(self, name: str, digest: Digest) -> Path:
        return self._repo(name) / "_layers" / digest.algorithm / digest.hex

    def _revision(self, name: str, digest: Digest) -> Path:
        return self._repo(name) / "_manifests" / "revisions" / digest.algorithm / digest.hex

    def _tag(self, name: str, tag: str) -> Path:
        return self._repo(name) / "_manifests" / "tags" / tag

    def repository_exists(self, name: str) -> bool:
        repo = self._repo(name)
        return (repo / "_layers").is_dir() or (repo / "_manifests").is_dir()

    def repositories(self) -> list[str]:
        """Every repository, sorted."""
        names: list[str] = []
        for directory, subdirs, _ in os.walk(self._repositories):
            if "_layers" in subdirs or "_manifests" in subdirs:
                names.append(os.path.relpath(directory, self._repositories))
            subdirs[:] = [d for d in subdirs if not d.startswith("_")]
        return sorted(names)

    def link_blob(self, name: str, digest: Digest) -> None:
        _touch(self._layer_link(name, digest))

    def unlink_blob(self, name: str, digest: Digest) -> bool:
        return _remove(self._layer_link(name, digest))

    def repository_blob_size(self, name: str, digest: Digest) -> int | None:
        """The blob's size when it is linked into `name` and present, else None."""
        if not self._layer_link(name, digest).exists():
            return None
        return self.blob_size(digest)

    def linked_blobs(self, name: str) -> Iterator[tuple[Path, Digest]]:
        yield from _digest_files(self._repo(name) / "_layers")

    # -- manifests -------------------------------------------------------------------------

    def put_manifest(self, name: str, digest: Digest, media_type: str, data: bytes,
                     tag: str | None, referrer: tuple[Digest, dict[str, Any]] | None) -> None:
        """Store a manifest's bytes, link it into `name`, point `tag` at it and record it
        as a referrer of its subject. The tag moves last: a reader following it always
        finds the manifest."""
        self.put_blob_bytes(data, digest)
        revision = self._revision(name, digest)
        revision.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(revision, media_type)
        if referrer is not None:
            subject, descriptor = referrer
            path = self._referrer(name, subject, digest)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps(descriptor))
        if tag is not None:
            path = self._tag(name, tag)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, str(digest))

    def manifest(self, name: str, digest: Digest) -> tuple[str, Path] | None:
        """(media type, blob path) of a manifest of `name`, or None."""
        try:
            media_type = self._revision(name, digest).read_text()
        except (FileNotFoundError, NotADirectoryError):
            return None
        path = self.blob_path(digest)
        return (media_type, path) if path.exists() else None

    def manifests(self, name: str) -> Iterator[tuple[Digest, str]]:
        """(digest, media type) of every manifest of `name`."""
        for path, digest in _digest_files(self._repo(name) / "_manifests" / "revisions"):
            with contextlib.suppress(FileNotFoundError):
                yield digest, path.read_text()

    def resolve_tag(self, name: str, tag: str) -> Digest | None:
        try:
            return Digest(self._tag(name, tag).read_text().strip())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return None

    def tags(self, name: str) -> list[str]:
        try:
            entries = os.listdir(self._repo(name) / "_manifests" / "tags")
        except FileNotFoundError:
            return []
        return sorted(entry for entry in entries if not entry.startswith("."))

    def delete_tag(self, name: str, tag: str) -> bool:
        return _remove(self._tag(name, tag))

    def delete_manifest(self, name: str, digest: Digest) -> bool:
        """Unlink a manifest from `name` with every tag pointing at it and its referrer
        entry; the bytes stay until garbage collection. False if it was not there."""
        if not _remove(self._revision(name, digest)):
            return False
        for tag in self.tags(name):
            if self.resolve_tag(name, tag) == digest:
                self.delete_tag(name, tag)
        referrers = self._repo(name) / "_referrers"
        for path in referrers.glob(f"*/*/{digest.algorithm}-{digest.hex}"):
            path.unlink(missing_ok=True)
        return True

    # -- referrers -------------------------------------------------------------------------

    def _referrer(self, name: str, subject: Digest, digest: Digest) -> Path:
        return (self._repo(name) / "_referrers" / subject.algorithm / subject.hex
                / f"{digest.algorithm}-{digest.hex}")

    def referrers(self, name: str, subject: Digest) -> list[dict[str, Any]]:
        """The descriptors of the manifests of `name` whose subject is `subject`."""
        directory = self._repo(name) / "_referrers" / subject.algorithm / subject.hex
        try:
            entries = sorted(os.listdir(directory))
        except FileNotFoundError:
            return []
        found = []
        for entry in entries:
            if entry.startswith("."):
                continue
            with contextlib.suppress(FileNotFoundError, ValueError):
                found.append(json.loads((directory / entry).read_text()))
        return found

    # -- uploads ---------------------------------------------------------------------------

    def start_upload(self, name: str) -> Upload:
        self._repo(name)  # validates the name
        upload_id = str(uuid.uuid4())
        directory = self._uploads / upload_id
        directory.mkdir()
        write_atomic(directory / "repository", name)
        (directory / "data").touch(mode=0o600)
        upload = Upload(directory, name, upload_id)
        self._live[upload_id] = upload
        return upload

    def upload(self, name: str, upload_id: str) -> Upload | None:
        """The session `upload_id` of repository `name`, or None."""
        if _UUID.fullmatch(upload_id) is None:
            return None
        live = self._live.get(upload_id)
        if live is not None and live.directory.is_dir():
            return live if live.name == name else None
        directory = self._uploads / upload_id
        try:
            owner = (directory / "repository").read_text()
        except FileNotFoundError:
            return None
        if owner != name:
            return None
        upload = Upload(directory, name, upload_id)
        self._live[upload_id] = upload
        return upload

    def commit_upload(self, upload: Upload, digest: Digest) -> None:
        """Move a verified upload into the blob store and link it into its repository."""
        target = self.blob_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(upload.data, 0o444)
        try:
            # link fails if the blob exists (a concurrent push of the same content won):
            # the content is the same, so that is success too.
            os.link(upload.data, target)
        except FileExistsError:
            pass
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            os.replace(upload.data, target)
        self.link_blob(upload.name, digest)
        self.cancel_upload(upload)

    def cancel_upload(self, upload: Upload) -> None:
        self._live.pop(upload.id, None)
        shutil.rmtree(upload.directory, ignore_errors=True)

    def purge_uploads(self, max_age: float) -> int:
        """Remove the uploads untouched for `max_age` seconds; returns how many."""
        removed = 0
        cutoff = time.time() - max_age
        for entry in self._uploads.iterdir():
            try:
                newest = max(entry.stat().st_mtime, (entry / "data").stat().st_mtime)
            except FileNotFoundError:
                newest = 0
            if newest < cutoff:
                self._live.pop(entry.name, None)
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed


_SYNC_FILE_RANGE_WRITE = 2
_libc: Any = None


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """sync_file_range(SYNC_FILE_RANGE_WRITE): queue the range for writing, don't wait."""
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                                             ctypes.c_uint]
            _libc = libc
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _remove(path: Path) -> bool:
    """Unlink `path`; False when it was not there."""
    try:
        path.unlink()
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # An empty file: its existence is the whole content, so creating it is atomic.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    os.close(fd)


def _digest_files(directory: Path) -> Iterator[tuple[Path, Digest]]:
    """(path, digest) of the <alg>/<hex> files under `directory`."""
    try:
        algorithms = os.listdir(directory)
    except FileNotFoundError:
        return
    for algorithm in algorithms:
        try:
            entries = os.listdir(directory / algorithm)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                yield directory / algorithm / entry, Digest(f"{algorithm}:{entry}")
            except ValueError:
                continue  # a temporary file of write_atomic
