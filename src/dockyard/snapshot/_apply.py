"""Applying a layer tarball to an empty directory, in overlayfs form.

The tar is read once, as a stream ('r|'), through a hashing reader that yields the diff ID.
What each member means is decided here, from the member alone and from what this layer
has created so far (_LayerTree): the target starts empty, so that record is the whole
truth about the directory, and it is enough to refuse a member that would be written
through a symlink, a hard link to anything not extracted by this layer, or a name that
leaves the layer. The LayerWriter then does the writing (DirWriter on disk, a fake in
unit tests), itself without following symlinks.
"""

from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Self

from ..compression import corrupt_data_errors
from ._compression import Readable, open_layer_stream, read_exactly
from ._errors import LayerError
from ._fstree import content_size, remove_tree
from ._names import ROOT, Marker, ancestors, classify, normalize_name
from ._writer import Attrs, DirWriter, LayerWriter

_XATTR_PAX_PREFIX = "SCHILY.xattr."
# overlayfs keeps its own metadata in these namespaces (opaque, redirect, metacopy, ...):
# a layer must not be able to forge it. Whiteouts come only from .wh. markers.
_RESERVED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")

_SKIP_CHUNK = 1 << 20

_STREAM_ERRORS = (tarfile.TarError, OSError, *corrupt_data_errors())


@dataclass(frozen=True)
class AppliedLayer:
    diff_id: str  # "sha256:<hex>" of the uncompressed tar
    size: int  # bytes of content, counted as Docker counts a layer


def apply_layer(stream: Readable, target_dir: Path | str) -> AppliedLayer:
    """Extract a layer tarball (plain, gzip, zstd, bzip2 or xz) into an empty directory.

    Whiteouts become overlayfs whiteouts (0/0 character devices, trusted.overlay.opaque),
    which needs root. On any failure the target directory is removed and LayerError is
    raised, naming the member (a failed write too: "layer member 'x': No space left...").
    """
    target = Path(target_dir)
    target.mkdir(exist_ok=True)
    if any(target.iterdir()):
        raise ValueError(f"{target}: a layer is applied to an empty directory only")
    try:
        os.chmod(target, 0o755)  # whatever the umask: overlay shows a layer root as it is
        with DirWriter(target) as writer:
            diff_id = apply_tar(stream, writer)
        return AppliedLayer(diff_id, content_size(target))
    except BaseException:
        remove_tree(target)
        raise


def apply_tar(stream: Readable, writer: LayerWriter) -> str:
    """Apply every member of the stream through writer; returns the diff ID."""
    reader, _compression = open_layer_stream(stream)
    context = "before its first member"
    try:
        first_block = reader.read_exactly(tarfile.BLOCKSIZE)
        if not first_block:
            return reader.digest()  # an empty stream is an empty layer (as for Go's tar)
        tar = _TarReader(first_block, reader)
        applier = _Applier(writer)
        while True:
            member = tar.next()
            if member is None:
                break
            context = f"member {member.name!r}"
            applier.apply(member, tar)
            context = f"after member {member.name!r}"
        context = "after its last member"
        applier.finish()
        reader.drain()
    except LayerError as e:
        raise LayerError(f"layer {context}: {e}") from e
    except _STREAM_ERRORS as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise LayerError(f"layer {context}: {reason}") from e
    return reader.digest()


class _TarReader:
    """A tar stream read once, front to back.

    Headers are parsed by tarfile itself (TarInfo.fromtarfile: ustar, pax, GNU long names,
    sparse maps), which asks this object for what it asks of a TarFile: fileobj (read,
    tell), encoding, errors, pax_headers (the global ones) and offset (where the next
    header starts). Member data goes to the writer straight from the stream, in the large
    pieces the decompressor hands out, rather than through tarfile's stream mode (10 KB
    records, each copied several times): for large files, that was most of the work.
    """

    encoding = "utf-8"
    errors = "surrogateescape"

    def __init__(self, head: bytes, source: Readable) -> None:
        self.fileobj = self
        self.pax_headers: dict[str, str] = {}
        self.offset = 0  # of the next header, set by TarInfo.fromtarfile
        self._head = head
        self._source = source
        self._position = 0

    def next(self) -> tarfile.TarInfo | None:
        """The next member (its data not read yet), or None at the end-of-archive block."""
        self._skip(self.offset - self._position)  # data the applier did not read; padding
        try:
            return _StrictTarInfo.fromtarfile(self)  # type: ignore[arg-type]
        except tarfile.EOFHeaderError:  # type: ignore[attr-defined]
            return None

    def data(self, member: tarfile.TarInfo) -> Readable:
        """A regular member's content, read from where the stream is."""
        if member.sparse is not None:  # type: ignore[attr-defined]
            # Holes are filled from the sparse map by tarfile's own reader, over this
            # stream (it only seeks forward).
            return tarfile.ExFileObject(self, member)  # type: ignore[arg-type]
        if member.offset_data != self._position:
            raise LayerError("member data is not where its header says")
        return _MemberData(self, member.size)

    # -- what tarfile calls ------------------------------------------------------------------

    def read(self, size: int = -1, /) -> bytes:
        """size bytes (fewer only at the end of the stream)."""
        return read_exactly(self.piece, size)

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = 0, /) -> int:
        if whence != 0 or position < self._position:
            raise LayerError("the layer stream is read front to back only")
        self._skip(position - self._position)
        return self._position

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    # -- internals ---------------------------------------------------------------------------

    def piece(self, limit: int) -> bytes:
        """At most limit bytes, as many as the source has at hand (at least one, unless
        the stream ended)."""
        if self._head:
            data, self._head = self._head[:limit], self._head[limit:]
        else:
            data = self._source.read(limit)
        self._position += len(data)
        return data

    def _skip(self, count: int) -> None:
        while count > 0:
            data = self.piece(min(count, _SKIP_CHUNK))
            if not data:
                raise LayerError("truncated tar stream (member data missing)")
            count -= len(data)


class _MemberData:
    """A regular member's content: its size in bytes from the stream, in the pieces they
    come in (the writer loops until it has them all)."""

    def __init__(self, tar: _TarReader, size: int) -> None:
        self._tar = tar
        self._left = size

    def read(self, size: int = -1, /) -> bytes:
        if self._left <= 0 or size == 0:
            return b""
        data = self._tar.piece(self._left if size < 0 else min(size, self._left))
        self._left -= len(data)
        return data


class _StrictTarInfo(tarfile.TarInfo):
    """tarfile ends the archive quietly at a truncated or invalid header once past the first
    member; for a layer that is a truncated or corrupt stream, not an end."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> Self:
        # (tarfile's header errors are real but missing from typeshed's stubs.)
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.EOFHeaderError:  # type: ignore[attr-defined]
            raise  # a zero block: the real end of the archive
        except (tarfile.EmptyHeaderError,  # type: ignore[attr-defined]
                tarfile.TruncatedHeaderError) as e:  # type: ignore[attr-defined]
            raise LayerError("truncated tar stream (no end-of-archive marker)") from e
        except tarfile.InvalidHeaderError as e:  # type: ignore[attr-defined]
            raise LayerError(f"corrupt tar header ({e})") from e


class _Kind(Enum):
    DIR = "dir"
    FILE = "file"  # regular file, device node or fifo
    SYMLINK = "symlink"
    WHITEOUT = "whiteout"


class _LayerTree:
    """What this layer has created, by normalised path (the target started empty)."""

    def __init__(self) -> None:
        self._kinds: dict[str, _Kind] = {ROOT: _Kind.DIR}

    def get(self, path: str) -> _Kind | None:
        return self._kinds.get(path)

    def add(self, path: str, kind: _Kind) -> None:
        self._kinds[path] = kind

    def drop(self, path: str) -> None:
        """Forget path and, for a directory, everything below it."""
        if self._kinds.pop(path, None) is _Kind.DIR:
            prefix = path + "/"
            for below in [p for p in self._kinds if p.startswith(prefix)]:
                del self._kinds[below]


class _Applier:
    def __init__(self, writer: LayerWriter) -> None:
        self._writer = writer
        self._tree = _LayerTree()
        self._dir_mtimes: dict[str, int] = {}

    def apply(self, member: tarfile.TarInfo, tar: _TarReader) -> None:
        if member.type == tarfile.XGLTYPE:
            return  # a global pax header, already folded into tarfile's state
        path = normalize_name(member.name)
        marker, target = classify(path)
        if marker is Marker.AUFS_META:
            return
        if marker is Marker.OPAQUE:
            self._ensure_dir(target)
            self._writer.opaque(target)
            return
        if marker is Marker.WHITEOUT:
            if self._tree.get(target) is not None:
                # The spec: a whiteout hides lower layers only, never this layer's own
                # files (and a second whiteout of the same name changes nothing).
                return
            self._ensure_parents(target)
            self._writer.whiteout(target, member.uid, member.gid)
            self._tree.add(target, _Kind.WHITEOUT)
            return
        self._apply_content(path, member, tar)

    def _apply_content(self, path: str, member: tarfile.TarInfo, tar: _TarReader) -> None:
        if path == ROOT:
            if not member.isdir():
                raise LayerError("the layer root is not a directory")
            return  # Docker does not apply the root entry's attributes either
        link_target = self._hardlink_target(path, member) if member.islnk() else None
        self._ensure_parents(path)
        existing = self._tree.get(path)
        if existing is not None and not (existing is _Kind.DIR and member.isdir()):
            # The spec's rule for an existing path: replace it, unless both are directories
            # (then the new attributes apply and the contents merge).
            self._writer.remove(path)
            self._tree.drop(path)
        attrs = _attrs(member)
        writer = self._writer
        if member.isdir():
            writer.directory(path, attrs, exists=existing is _Kind.DIR)
            if existing is _Kind.WHITEOUT:
                # Deleted from below, then made anew in this same layer: what was below
                # must stay hidden, as an opaque directory says.
                writer.opaque(path)
            self._tree.add(path, _Kind.DIR)
            self._dir_mtimes[path] = attrs.mtime_ns
        elif member.isreg():
            writer.regular(path, attrs, tar.data(member), member.size)
            self._tree.add(path, _Kind.FILE)
        elif member.issym():
            writer.symlink(path, member.linkname, attrs)
            self._tree.add(path, _Kind.SYMLINK)
        elif link_target is not None:
            writer.hardlink(path, link_target)
            self._tree.add(path, self._tree.get(link_target) or _Kind.FILE)
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = (stat.S_IFCHR if member.ischr() else
                    stat.S_IFBLK if member.isblk() else stat.S_IFIFO)
            writer.node(path, kind, member.devmajor, member.devminor, attrs)
            self._tree.add(path, _Kind.FILE)
        else:
            raise LayerError(f"unsupported member type {member.type!r}")

    def _hardlink_target(self, path: str, member: tarfile.TarInfo) -> str:
        # Same normalisation as names: '/x' is the layer's x, '../x' is refused. And only a
        # non-directory this layer has already extracted may be linked to.
        target = normalize_name(member.linkname)
        kind = self._tree.get(target)
        if kind not in (_Kind.FILE, _Kind.SYMLINK) or target == path:
            raise LayerError(f"hard link to {member.linkname!r}, which is not a file "
                             "extracted earlier in this layer")
        return target

    def _ensure_parents(self, path: str) -> None:
        for directory in ancestors(path):
            self._ensure_dir(directory)

    def _ensure_dir(self, path: str) -> None:
        """Make path a directory of this layer (creating it implicitly), or refuse."""
        kind = self._tree.get(path)
        if kind is _Kind.DIR:
            return
        for directory in ancestors(path):
            if self._tree.get(directory) is not _Kind.DIR:
                self._ensure_dir(directory)
        if kind is None:
            self._writer.implicit_dir(path)
        elif kind is _Kind.WHITEOUT:
            # A member below a deleted name: the name is a new directory hiding the old.
            self._writer.remove(path)
            self._writer.implicit_dir(path)
            self._writer.opaque(path)
        elif kind is _Kind.SYMLINK:
            raise LayerError(f"{path!r} is a symlink in this layer; members are never "
                             "written through symlinks")
        else:
            raise LayerError(f"{path!r} is not a directory")
        self._tree.add(path, _Kind.DIR)

    def finish(self) -> None:
        # Directory mtimes last: creating their entries changed them.
        for path, mtime_ns in self._dir_mtimes.items():
            if self._tree.get(path) is _Kind.DIR:
                self._writer.dir_mtime(path, mtime_ns)


def _attrs(member: tarfile.TarInfo) -> Attrs:
    xattrs = {}
    for key, value in member.pax_headers.items():
        if not key.startswith(_XATTR_PAX_PREFIX):
            continue
        name = key[len(_XATTR_PAX_PREFIX):]
        if name.startswith(_RESERVED_XATTR_PREFIXES):
            continue
        # tarfile decodes pax values as UTF-8 with surrogateescape: this restores the bytes.
        xattrs[name] = value.encode("utf-8", "surrogateescape")
    mtime = member.mtime
    mtime_ns = mtime * 1_000_000_000 if isinstance(mtime, int) else round(mtime * 1e9)
    return Attrs(mode=member.mode & 0o7777, uid=member.uid, gid=member.gid,
                 mtime_ns=int(mtime_ns), xattrs=xattrs)
