"""One streaming pass over an image archive's tar: what it holds, safely.

The tar is read once, front to back (tarfile mode "r|"), so an archive can come from a
pipe or an HTTP body without being spooled: members named blobs/<alg>/<hex> go straight
into the content store, verified against their names; other small members (manifest.json,
index.json, legacy <id>/json and layer.tar files) are kept in memory; larger ones go to
the store under the digest of their content. Symbolic and hard links are recorded and
resolved by name afterwards, and must stay inside the archive.

Nothing here is extracted to the filesystem, so member names cannot overwrite anything;
they are still checked ('..' or absolute names are refused) because such an archive is
malformed or hostile, and saying so beats guessing what it meant.
"""

from __future__ import annotations

import posixpath
import re
import tarfile
from dataclasses import dataclass, field
from typing import Any

from dockyard.compression import corrupt_data_errors, open_decompressed, read_exactly
from dockyard.image.content import ContentStore, Readable
from dockyard.image.digest import Digest
from dockyard.image.errors import ArchiveError, DigestError, DigestMismatchError

SMALL_MEMBER = 1 << 20  # members up to this size are kept in memory ...
MEMORY_BUDGET = 64 << 20  # ... as long as they add up to no more than this
_MAX_LINK_HOPS = 40  # as Linux's limit on symlinks followed in one lookup
_BLOB_NAME = re.compile(r"blobs/([^/]+)/([^/]+)")
_CORRUPT_DATA = corrupt_data_errors()


class _Decompressed:
    """A decompressing reader whose decoder failures become ArchiveError."""

    def __init__(self, reader: Any, kind: str, what: str) -> None:
        self._reader = reader
        self._kind = kind
        self._what = what

    def read(self, size: int = -1, /) -> bytes:
        try:
            return self._reader.read(size)  # type: ignore[no-any-return]
        except OSError as error:
            if error.errno is not None:
                raise  # a real I/O error, not bad compressed data
            raise self._corrupt(error) from None
        except _CORRUPT_DATA as error:
            raise self._corrupt(error) from None

    def _corrupt(self, error: Exception) -> ArchiveError:
        return ArchiveError(f"{self._what} is truncated or corrupt ({self._kind}): {error}")


def decompressed(stream: Readable, what: str) -> tuple[Readable, str | None]:
    """`stream` decompressed if its first bytes say it is compressed, and which way."""
    reader, kind = open_decompressed(stream)
    if kind == "none":
        return reader, None
    return _Decompressed(reader, kind, what), kind


@dataclass
class Member:
    """A regular file of the archive: its bytes, or the blob holding them."""

    name: str
    size: int
    data: bytes | None = None
    digest: Digest | None = None


@dataclass
class ArchiveContents:
    files: dict[str, Member] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # name -> archive-relative target
    blobs: dict[Digest, int] = field(default_factory=dict)  # from blobs/<alg>/<hex> members

    def resolve(self, name: str) -> Member | None:
        """The file `name` refers to after following links (by name, inside the archive)."""
        parts = _clean(name).split("/")
        hops = 0
        index = 0
        while index < len(parts):
            target = self.links.get("/".join(parts[:index + 1]))
            if target is None:
                index += 1
                continue
            hops += 1
            if hops > _MAX_LINK_HOPS:
                raise ArchiveError(f"member {name}: too many levels of links")
            parts = [p for p in target.split("/") if p] + parts[index + 1:]
            index = 0
        return self.files.get("/".join(parts))

    def read(self, store: ContentStore, name: str, limit: int) -> bytes:
        """The content of the file `name` (at most `limit` bytes); ArchiveError if absent."""
        member = self.resolve(name)
        if member is None:
            raise ArchiveError(f"member {name} not found in the archive")
        if member.size > limit:
            raise ArchiveError(f"member {name} is too large ({member.size} bytes)")
        if member.data is not None:
            return member.data
        assert member.digest is not None
        return store.read_bytes(member.digest)


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")


def _check_name(name: str, what: str) -> str:
    """`name` without "./" and trailing "/"; refuses absolute names and '..' components."""
    cleaned = _clean(name)
    if name.startswith("/"):
        raise ArchiveError(f"{what} {name}: absolute paths are not allowed in an image archive")
    if ".." in cleaned.split("/"):
        raise ArchiveError(f"{what} {name}: '..' is not allowed in an image archive")
    return cleaned


def _link_target(member: tarfile.TarInfo, name: str) -> str:
    target = member.linkname
    kind = "symlink" if member.issym() else "hard link"
    if not target or target.startswith("/"):
        raise ArchiveError(f"member {name}: {kind} to {target!r} points outside the archive")
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    else:
        target = posixpath.normpath(target)  # hard link names are archive-relative
    if target == ".." or target.startswith("../"):
        raise ArchiveError(f"member {name}: {kind} to {member.linkname!r} points outside the "
                           "archive")
    return "" if target == "." else target


class _EndState:
    clean = False  # did iteration stop at an end-of-archive block (not at a short read)?
    problem = ""


def _tarinfo_class(state: _EndState) -> type[tarfile.TarInfo]:
    """A TarInfo that records why tarfile stopped: tarfile ends iteration quietly on a
    truncated or corrupt header, which must not pass for the end of a valid archive."""

    class _Tracking(tarfile.TarInfo):
        @classmethod
        def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
            try:
                info = super().fromtarfile(tar)
            except tarfile.EOFHeaderError:
                state.clean = True
                raise
            except tarfile.HeaderError as error:
                state.problem = str(error)
                raise
            state.clean = False
            return info

    return _Tracking


def read_archive(fileobj: Readable, store: ContentStore, added: set[Digest]) -> ArchiveContents:
    """Read the whole (possibly compressed) archive; blobs it stores are recorded in `added`
    when they are new, so the caller can remove them if the load fails."""
    stream, _ = decompressed(fileobj, "archive")
    contents = ArchiveContents()
    state = _EndState()
    budget = MEMORY_BUDGET
    current = ""
    try:
        with tarfile.open(fileobj=stream, mode="r|",  # type: ignore[call-overload]
                          tarinfo=_tarinfo_class(state)) as tar:
            for member in tar:
                current = member.name
                budget = _take(tar, member, contents, store, added, budget)
    except tarfile.TarError as error:
        if "unexpected end of data" in str(error):
            where = f" (in member {current})" if current else ""
            raise ArchiveError(f"archive is truncated or corrupt{where}: {error}") from None
        raise ArchiveError(f"invalid tar archive: {error}") from None
    if not state.clean:
        detail = f" ({state.problem})" if state.problem else ""
        raise ArchiveError(f"archive is truncated or corrupt: no end-of-archive marker{detail}")
    return contents


def _take(tar: tarfile.TarFile, member: tarfile.TarInfo, contents: ArchiveContents,
          store: ContentStore, added: set[Digest], budget: int) -> int:
    name = _check_name(member.name, "member")
    if member.isdir() or not name:
        return budget
    if member.issym() or member.islnk():
        contents.links[name] = _link_target(member, name)
        contents.files.pop(name, None)
        return budget
    if not member.isreg():
        raise ArchiveError(f"member {name}: device, FIFO and other special files are not "
                           "allowed in an image archive")
    contents.links.pop(name, None)
    source = tar.extractfile(member)
    assert source is not None
    blob = _BLOB_NAME.fullmatch(name)
    try:
        if blob is not None:
            try:
                expected = Digest(f"{blob.group(1)}:{blob.group(2)}")
            except DigestError as error:
                raise ArchiveError(f"member {name}: not a valid blob name: {error}") from None
            digest, size = store.ingest(source, expected, member.size, added=added)
            contents.blobs[digest] = size
            contents.files[name] = Member(name, size, digest=digest)
        elif member.size <= min(SMALL_MEMBER, budget):
            data = read_exactly(source.read, member.size)
            contents.files[name] = Member(name, member.size, data=data)
            budget -= member.size
        else:
            digest, size = store.ingest(source, size=member.size, added=added)
            contents.files[name] = Member(name, size, digest=digest)
    except DigestMismatchError as error:
        raise ArchiveError(f"member {name}: {error}") from None
    return budget
