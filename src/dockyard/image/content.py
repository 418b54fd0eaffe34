"""The content store: blobs addressed by their digest, verified on write and on read.

Layout (containerd's): `root/blobs/<algorithm>/<hex>` for committed blobs, `root/ingest/`
for writes in progress. A write goes to its own file in ingest/, is hashed as it is
written (its writeback to disk started every few megabytes), fsynced, verified, and only
then linked into blobs/, so a blob that exists is always complete and correct, whatever
instant the process dies at.

Each ingest file is flock()ed by its writer for as long as it is in use; the store, when
constructed, removes the ingest files nobody holds (leftovers of a crash) and leaves the
ones another process or thread is still writing.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from dockyard.image.digest import SHA256, Digest, new_hasher
from dockyard.image.errors import BlobNotFoundError, DigestMismatchError

_CHUNK = 1 << 20
_WRITEBACK_STEP = 8 << 20


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class ContentStore:
    """Content-addressed blob storage under `root`. Safe for concurrent use by threads
    and processes: writers never share a file, and commit is an atomic link."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._ingest = self.root / "ingest"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._ingest.mkdir(parents=True, exist_ok=True)
        self._remove_abandoned_ingests()

    # -- reading ---------------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        """Where the blob `digest` lives (whether or not it exists). Validating the digest
        first is what keeps a hostile digest string from naming a path outside the store."""
        checked = Digest(digest)
        return self._blobs / checked.algorithm / checked.hex

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFoundError(str(digest)) from None

    def open(self, digest: str, *, verify: bool = False) -> BinaryIO:
        """The blob as a binary file. With `verify`, reading it to the end raises
        DigestMismatchError if the content is not what its digest says (no seeking then)."""
        try:
            handle = self.path(digest).open("rb")
        except FileNotFoundError:
            raise BlobNotFoundError(str(digest)) from None
        if verify:
            return _VerifyingReader(handle, Digest(digest))  # type: ignore[return-value]
        return handle

    def read_bytes(self, digest: str, verify: bool = True) -> bytes:
        """The whole blob; checked against its digest unless `verify` is False."""
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobNotFoundError(str(digest)) from None
        if verify:
            checked = Digest(digest)
            hasher = new_hasher(checked.algorithm)
            hasher.update(data)
            if hasher.hexdigest() != checked.hex:
                raise DigestMismatchError(f"blob {digest} is corrupt: its content hashes to "
                                          f"{checked.algorithm}:{hasher.hexdigest()}")
        return data

    def digests(self) -> Iterator[Digest]:
        """Every committed blob (any order)."""
        for algorithm_dir in sorted(self._blobs.iterdir()):
            if not algorithm_dir.is_dir():
                continue
            for entry in algorithm_dir.iterdir():
                try:
                    yield Digest(f"{algorithm_dir.name}:{entry.name}")
                except ValueError:
                    continue  # not a blob this store wrote

    # -- writing ---------------------------------------------------------------------------

    def ingest(self, source: bytes | bytearray | memoryview | Readable,
               expected: str | None = None, size: int | None = None, *,
               added: set[Digest] | None = None) -> tuple[Digest, int]:
        """Store the content of `source` (bytes, or a binary stream read to its end).

        If `expected` (a digest) or `size` is given and the content does not match, raise
        DigestMismatchError and leave nothing behind. Storing a blob that is already
        present is a no-op (the content is still read and verified). If `added` is given,
        the digest is added to it when this call is the one that created the blob, so a
        multi-blob operation that fails can delete exactly what it added.
        Returns (digest, size).
        """
        algorithm = SHA256
        wanted = None
        if expected is not None:
            wanted = Digest(expected)
            algorithm = wanted.algorithm
        if wanted is not None and self.has(wanted):
            # Present already: consume and verify the source, but do not write it again.
            hasher = new_hasher(algorithm)
            total = _copy(source, hasher.update, size)
            actual = Digest(f"{algorithm}:{hasher.hexdigest()}")
            _check(wanted, size, actual, total)
            return actual, total
        handle, temp = self._new_ingest_file()
        try:
            hasher = new_hasher(algorithm)

            written = [0, 0]  # bytes, and how many of them are being written back

            def write(chunk: bytes) -> None:
                hasher.update(chunk)
                handle.write(chunk)
                written[0] += len(chunk)
                if written[0] - written[1] >= _WRITEBACK_STEP:
                    _start_writeback(handle, written[1], written[0])
                    written[1] = written[0]

            total = _copy(source, write, size)
            actual = Digest(f"{algorithm}:{hasher.hexdigest()}")
            _check(wanted, size, actual, total)
            handle.flush()
            os.fchmod(handle.fileno(), 0o444)  # committed blobs are never written again
            os.fsync(handle.fileno())
            if self._commit(temp, actual) and added is not None:
                added.add(actual)
            return actual, total
        finally:
            handle.close()  # releases the flock
            temp.unlink(missing_ok=True)

    def delete(self, digest: str) -> bool:
        """Remove a blob; False if it was not there."""
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            return False
        return True

    # -- internals -------------------------------------------------------------------------

    def _new_ingest_file(self) -> tuple[IO[bytes], Path]:
        while True:
            temp = self._ingest / secrets.token_hex(16)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            # A cleaner in another process may have removed the file between our create
            # and our lock; the inode check makes sure we hold a lock on the file we name.
            try:
                if os.stat(temp).st_ino == os.fstat(fd).st_ino:
                    return os.fdopen(fd, "wb"), temp
            except FileNotFoundError:
                pass
            os.close(fd)

    def _commit(self, temp: Path, digest: Digest) -> bool:
        """Link `temp` into place; True if this call created the blob."""
        target = self.path(digest)
        target.parent.mkdir(exist_ok=True)
        try:
            # link, not rename: it fails if the blob exists, which tells exactly one of
            # several concurrent writers of the same content that it created it.
            os.link(temp, target)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            if target.exists():  # a filesystem without hard links: fall back to rename
                return False
            os.replace(temp, target)
        _fsync_dir(target.parent)
        return True

    def _remove_abandoned_ingests(self) -> None:
        for entry in self._ingest.iterdir():
            try:
                fd = os.open(entry, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            except OSError:
                continue  # gone already, or a symlink: not a file this store made
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            finally:
                os.close(fd)
            entry.unlink(missing_ok=True)


def _copy(source: bytes | bytearray | memoryview | Readable, sink: _Sink,
          limit: int | None) -> int:
    """Feed `source` to `sink` in chunks; stop early once more than `limit` bytes came,
    so that a stream lying about its size cannot fill the disk."""
    total = 0
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for start in range(0, len(view), _CHUNK):
            sink(bytes(view[start:start + _CHUNK]))
        return len(view)
    while True:
        chunk = source.read(_CHUNK)
        if not chunk:
            return total
        total += len(chunk)
        if limit is not None and total > limit:
            raise DigestMismatchError(f"size mismatch: expected {limit} bytes, got more")
        sink(chunk)


class _Sink(Protocol):
    def __call__(self, chunk: bytes, /) -> None: ...


def _check(expected: Digest | None, size: int | None, actual: Digest, total: int) -> None:
    if size is not None and total != size:
        raise DigestMismatchError(f"size mismatch: expected {size} bytes, got {total}")
    if expected is not None and actual != expected:
        raise DigestMismatchError(f"digest mismatch: expected {expected}, got {actual}")


def _start_writeback(handle: IO[bytes], start: int, end: int) -> None:
    """Have the kernel start writing [start, end) of a blob to disk now: the fsync at the
    end of the blob then waits for its last steps only, instead of for all of it while the
    other downloads of a pull wait on the same journal. (POSIX_FADV_DONTNEED starts the
    writeback of dirty pages and drops only pages already clean, which these are not.)"""
    handle.flush()
    try:
        os.posix_fadvise(handle.fileno(), start, end - start, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass  # only a hint; the fsync is what counts


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _VerifyingReader:
    """A read-only view of a blob that checks the digest when the end is reached."""

    def __init__(self, handle: BinaryIO, digest: Digest) -> None:
        self._handle = handle
        self._digest = digest
        self._hasher = new_hasher(digest.algorithm)
        self._checked = False

    def read(self, size: int = -1, /) -> bytes:
        data = self._handle.read(size)
        if data:
            self._hasher.update(data)
        elif not self._checked and size != 0:
            self._checked = True
            if self._hasher.hexdigest() != self._digest.hex:
                raise DigestMismatchError(f"blob {self._digest} is corrupt: its content "
                                          f"hashes to {self._digest.algorithm}:"
                                          f"{self._hasher.hexdigest()}")
        return data

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> _VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
