"""Applying layer tarballs: what each member means and what is refused (no root needed).

Most tests drive the applier with a recording writer, so they show exactly which writes a
synthetic (often malicious) tar leads to; the rest extract for real as the current user.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard

from dockyard.snapshot import LayerError, apply_layer
from dockyard.snapshot._apply import apply_tar
from dockyard.snapshot._compression import Readable
from dockyard.snapshot._writer import Attrs, DirWriter

MTIME = 1_600_000_000


def member(name: str, kind: str = "file", data: bytes = b"", linkname: str = "",
           mode: int | None = None, uid: int | None = None, gid: int | None = None,
           mtime: int = MTIME, pax: dict[str, str] | None = None,
           major: int = 0, minor: int = 0) -> tuple[tarfile.TarInfo, bytes | None]:
    """One tar member; owned by the current user unless said otherwise."""
    info = tarfile.TarInfo(name)
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
                 "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE,
                 "fifo": tarfile.FIFOTYPE}.get(kind, kind.encode())
    info.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    info.uid = os.getuid() if uid is None else uid
    info.gid = os.getgid() if gid is None else gid
    info.mtime = mtime
    info.linkname = linkname
    info.devmajor, info.devminor = major, minor
    if pax:
        info.pax_headers = dict(pax)
    if kind == "file":
        info.size = len(data)
        return info, data
    return info, None


def make_tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RecordingWriter:
    """A LayerWriter that only records what it is asked to do."""

    def __init__(self) -> None:
        self.ops: list[tuple[Any, ...]] = []
        self.attrs: dict[str, Attrs] = {}

    def implicit_dir(self, path: str) -> None:
        self.ops.append(("implicit_dir", path))

    def directory(self, path: str, attrs: Attrs, exists: bool) -> None:
        self.ops.append(("dir", path))
        self.attrs[path] = attrs

    def regular(self, path: str, attrs: Attrs, data: Readable, size: int) -> None:
        self.ops.append(("file", path, data.read(size)))
        self.attrs[path] = attrs

    def symlink(self, path: str, target: str, attrs: Attrs) -> None:
        self.ops.append(("symlink", path, target))

    def hardlink(self, path: str, target: str) -> None:
        self.ops.append(("hardlink", path, target))

    def node(self, path: str, kind: int, major: int, minor: int, attrs: Attrs) -> None:
        self.ops.append(("node", path, stat.S_IFMT(kind), major, minor))

    def whiteout(self, path: str, uid: int, gid: int) -> None:
        self.ops.append(("whiteout", path))

    def opaque(self, path: str) -> None:
        self.ops.append(("opaque", path))

    def remove(self, path: str) -> None:
        self.ops.append(("remove", path))

    def dir_mtime(self, path: str, mtime_ns: int) -> None:
        self.ops.append(("dir_mtime", path, mtime_ns))


def record(*members: tuple[tarfile.TarInfo, bytes | None]) -> RecordingWriter:
    writer = RecordingWriter()
    apply_tar(io.BytesIO(make_tar(*members)), writer)
    return writer


def record_failure(*members: tuple[tarfile.TarInfo, bytes | None]) -> tuple[str, RecordingWriter]:
    writer = RecordingWriter()
    with pytest.raises(LayerError) as failure:
        apply_tar(io.BytesIO(make_tar(*members)), writer)
    return str(failure.value), writer


def touched(writer: RecordingWriter) -> list[str]:
    return [op[1] for op in writer.ops if op[0] != "dir_mtime"]


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/../../x", "./../../etc/x"])
def test_dotdot_escapes_are_refused_and_named(name: str) -> None:
    message, writer = record_failure(member("ok", data=b"1"), member(name, data=b"2"))
    assert repr(name) in message
    assert touched(writer) == ["ok"]


def test_absolute_names_are_kept_inside_like_docker() -> None:
    writer = record(member("/etc/x", data=b"x"), member("/../y", data=b"y"))
    assert writer.ops[:3] == [("implicit_dir", "etc"), ("file", "etc/x", b"x"),
                              ("file", "y", b"y")]


def test_nothing_is_written_through_a_symlink_from_the_same_layer() -> None:
    message, writer = record_failure(member("a", "symlink", linkname="/"),
                                     member("a/etc/passwd", data=b"root::0:0::/:/bin/sh\n"))
    assert "symlink" in message and "a/etc/passwd" in message
    assert touched(writer) == ["a"]


def test_relative_symlink_parent_is_refused_too() -> None:
    message, writer = record_failure(member("b", "dir"), member("a", "symlink", linkname="b"),
                                     member("a/x", data=b"x"))
    assert "'a'" in message
    assert "a/x" not in touched(writer)


def test_file_as_parent_is_refused() -> None:
    message, _ = record_failure(member("f", data=b"x"), member("f/g", data=b"y"))
    assert "not a directory" in message


def test_symlink_replaced_by_a_directory_is_removed_first() -> None:
    writer = record(member("a", "symlink", linkname="/"), member("a", "dir"),
                    member("a/x", data=b"x"))
    assert touched(writer) == ["a", "a", "a", "a/x"]
    assert [op[0] for op in writer.ops[:4]] == ["symlink", "remove", "dir", "file"]


def test_symlinks_are_created_as_is() -> None:
    writer = record(member("l", "symlink", linkname="../../../../etc/shadow"))
    assert ("symlink", "l", "../../../../etc/shadow") in writer.ops


# -- hard links ------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["../../etc/passwd", "/etc/passwd", "missing", "d", ".",
                                    "h"])
def test_hard_links_only_to_files_of_this_layer(target: str) -> None:
    message, writer = record_failure(member("d", "dir"), member("f", data=b"x"),
                                     member("h", "hardlink", linkname=target))
    assert "h" not in touched(writer)
    assert "hard link" in message or "escapes" in message


def test_hard_link_to_an_earlier_member() -> None:
    writer = record(member("data/a", data=b"one\n"),
                    member("data/hard", "hardlink", linkname="data/a"),
                    member("data/abs", "hardlink", linkname="/data/a"))
    assert ("hardlink", "data/hard", "data/a") in writer.ops
    assert ("hardlink", "data/abs", "data/a") in writer.ops


def test_hard_link_to_a_symlink_links_the_symlink_itself() -> None:
    writer = record(member("l", "symlink", linkname="/etc"),
                    member("h", "hardlink", linkname="l"))
    assert ("hardlink", "h", "l") in writer.ops


def test_hard_link_after_its_target_was_replaced_by_a_directory() -> None:
    message, _ = record_failure(member("f", data=b"x"), member("f", "dir"),
                                member("h", "hardlink", linkname="f"))
    assert "hard link" in message


# -- whiteouts -------------------------------------------------------------------------------


def test_whiteouts_and_opaque_markers() -> None:
    writer = record(member("data", "dir"), member("data/.wh.gone", mode=0o600),
                    member("data/opaque", "dir"),
                    member("data/opaque/.wh..wh..opq", mode=0o755, mtime=0),
                    member("data/opaque/new", data=b"new\n"))
    assert ("whiteout", "data/gone") in writer.ops
    assert ("opaque", "data/opaque") in writer.ops
    assert not [op for op in writer.ops if ".wh." in op[1]]


def test_whiteout_never_hides_this_layers_own_file() -> None:
    writer = record(member("keep", data=b"x"), member(".wh.keep"), member(".wh.keep"))
    assert touched(writer) == ["keep"]


def test_whiteout_then_directory_makes_it_opaque() -> None:
    writer = record(member(".wh.d"), member("d", "dir"), member("d/new", data=b"n"))
    assert [op[:2] for op in writer.ops[:4]] == [("whiteout", "d"), ("remove", "d"),
                                                  ("dir", "d"), ("opaque", "d")]


def test_member_below_a_whiteout_turns_it_into_an_opaque_directory() -> None:
    writer = record(member(".wh.d"), member("d/new", data=b"n"))
    assert [op[:2] for op in writer.ops[:5]] == [("whiteout", "d"), ("remove", "d"),
                                                  ("implicit_dir", "d"), ("opaque", "d"),
                                                  ("file", "d/new")]


def test_opaque_marker_creates_its_directory_if_needed() -> None:
    writer = record(member("x/y/.wh..wh..opq"))
    assert writer.ops == [("implicit_dir", "x"), ("implicit_dir", "x/y"), ("opaque", "x/y")]


def test_aufs_metadata_is_skipped() -> None:
    writer = record(member(".wh..wh.plnk", "dir"), member(".wh..wh.plnk/1.2", data=b"x"),
                    member(".wh..wh.aufs", data=b""), member("real", data=b"r"))
    assert touched(writer) == ["real"]


def test_member_below_a_whiteout_name_is_refused() -> None:
    message, _ = record_failure(member("d/.wh.x/y", data=b"y"))
    assert "whiteout" in message


def test_unsupported_member_type() -> None:
    message, _ = record_failure(member("v", "V"))
    assert "unsupported" in message


# -- attributes ------------------------------------------------------------------------------


def test_attributes_and_pax_xattrs() -> None:
    binary = b"\x01\x00\xff\xfe"
    writer = record(member("bin/su", data=b"#!", mode=0o4755, uid=0, gid=42, pax={
        "SCHILY.xattr.user.comment": "hello",
        "SCHILY.xattr.security.capability": binary.decode("utf-8", "surrogateescape"),
        "SCHILY.xattr.trusted.overlay.opaque": "y",
        "SCHILY.xattr.trusted.overlay.redirect": "/etc"}))
    attrs = writer.attrs["bin/su"]
    assert (attrs.mode, attrs.uid, attrs.gid) == (0o4755, 0, 42)
    assert attrs.mtime_ns == MTIME * 1_000_000_000
    # overlayfs' own namespace cannot be forged from a layer.
    assert attrs.xattrs == {"user.comment": b"hello", "security.capability": binary}


def test_directory_mtimes_are_set_after_their_content() -> None:
    writer = record(member("d", "dir", mtime=123), member("d/f", data=b"x"),
                    member("d/.wh.old"))
    assert writer.ops[-1] == ("dir_mtime", "d", 123 * 1_000_000_000)


def test_devices_and_fifos() -> None:
    writer = record(member("dev/null", "chr", major=1, minor=3),
                    member("dev/loop0", "blk", major=7, minor=0), member("run/fifo", "fifo"))
    assert ("node", "dev/null", stat.S_IFCHR, 1, 3) in writer.ops
    assert ("node", "dev/loop0", stat.S_IFBLK, 7, 0) in writer.ops
    assert ("node", "run/fifo", stat.S_IFIFO, 0, 0) in writer.ops


# -- streams and diff IDs ----------------------------------------------------------------------


def _sample_tar() -> bytes:
    return make_tar(member("d", "dir"), member("d/a", data=b"a" * 100_000),
                    member("d/l", "symlink", linkname="a"))


@pytest.mark.parametrize("compress", [
    lambda b: b, gzip.compress, lambda b: zstandard.ZstdCompressor().compress(b),
    bz2.compress, lzma.compress,
    # several zstd frames, as a parallel compressor writes them
    lambda b: b"".join(zstandard.ZstdCompressor().compress(b[i:i + 4096])
                       for i in range(0, len(b), 4096)),
], ids=["plain", "gzip", "zstd", "bzip2", "xz", "zstd-frames"])
def test_diff_id_is_the_hash_of_the_uncompressed_tar(compress: Any) -> None:
    tar = _sample_tar()
    writer = RecordingWriter()
    assert apply_tar(io.BytesIO(compress(tar)), writer) == sha256(tar)
    assert ("file", "d/a", b"a" * 100_000) in writer.ops


def test_diff_id_covers_padding_after_the_end_marker() -> None:
    tar = _sample_tar() + b"\0" * 20480
    assert apply_tar(io.BytesIO(tar), RecordingWriter()) == sha256(tar)


def test_empty_stream_is_an_empty_layer() -> None:
    writer = RecordingWriter()
    assert apply_tar(io.BytesIO(b""), writer) == sha256(b"")
    assert writer.ops == []


@pytest.mark.parametrize("compress", [gzip.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b),
                                      bz2.compress, lzma.compress],
                         ids=["gzip", "zstd", "bzip2", "xz"])
def test_truncated_compressed_stream(compress: Any) -> None:
    tar = make_tar(*(member(f"f{i:02}", data=os.urandom(65536)) for i in range(24)))
    data = compress(tar)
    writer = RecordingWriter()
    with pytest.raises(LayerError, match=r"member 'f\d\d'"):
        apply_tar(io.BytesIO(data[:len(data) * 3 // 4]), writer)
    assert writer.ops  # it failed part way through, naming where


def test_truncated_tar_inside_a_member() -> None:
    tar = _sample_tar()
    with pytest.raises(LayerError, match="member 'd/a'"):
        apply_tar(io.BytesIO(tar[:3000]), RecordingWriter())


def test_tar_without_end_of_archive_marker() -> None:
    tar = make_tar(member("a", data=b"x"))
    end = tar.rstrip(b"\0")
    cut = len(end) + (-len(end)) % 512  # the data block of 'a', then nothing
    with pytest.raises(LayerError, match="after member 'a'.*truncated"):
        apply_tar(io.BytesIO(tar[:cut]), RecordingWriter())


def test_corrupt_header_after_the_first_member() -> None:
    tar = bytearray(make_tar(member("a", data=b"x"), member("b", data=b"y")))
    assert tar[1024:1025] == b"b"  # a's header and data block, then b's header
    tar[1024 + 148:1024 + 156] = b"0000000\0"  # its checksum
    with pytest.raises(LayerError, match="after member 'a'.*corrupt"):
        apply_tar(io.BytesIO(bytes(tar)), RecordingWriter())


def test_garbage_is_not_a_layer() -> None:
    with pytest.raises(LayerError):
        apply_tar(io.BytesIO(b"this is not a tar archive" * 100), RecordingWriter())


# -- the real writer, as the current user ------------------------------------------------------


def test_apply_layer_on_disk(tmp_path: Path) -> None:
    tar = make_tar(member("d", "dir", mode=0o750, mtime=1000),
                   member("d/f", data=b"content", mode=0o4711, mtime=2000),
                   member("d/h", "hardlink", linkname="d/f"),
                   member("d/l", "symlink", linkname="/etc/passwd", mtime=3000),
                   member("d/fifo", "fifo", mode=0o640),
                   member("implicit/parent/file", data=b"p"))
    target = tmp_path / "layer"
    applied = apply_layer(io.BytesIO(tar), target)
    assert applied.diff_id == sha256(tar)
    assert applied.size == len(b"content") + len(b"/etc/passwd") + 1

    f = os.lstat(target / "d/f")
    assert (stat.S_IMODE(f.st_mode), f.st_nlink, f.st_mtime) == (0o4711, 2, 2000)
    assert os.lstat(target / "d/h").st_ino == f.st_ino
    assert os.readlink(target / "d/l") == "/etc/passwd"
    assert os.lstat(target / "d/l").st_mtime == 3000
    assert stat.S_ISFIFO(os.lstat(target / "d/fifo").st_mode)
    d = os.lstat(target / "d")
    assert (stat.S_IMODE(d.st_mode), d.st_mtime) == (0o750, 1000)
    assert stat.S_IMODE(os.lstat(target / "implicit/parent").st_mode) == 0o755
    assert (target / "implicit/parent/file").read_bytes() == b"p"


def test_failed_apply_removes_the_partial_target(tmp_path: Path) -> None:
    data = gzip.compress(make_tar(member("ro", "dir", mode=0o555),
                                  member("ro/f", data=os.urandom(200_000))))
    target = tmp_path / "layer"
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(data[: len(data) - 5000]), target)
    assert not target.exists()


def test_apply_layer_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("keep")
    with pytest.raises(ValueError):
        apply_layer(io.BytesIO(make_tar(member("a", data=b"x"))), tmp_path)
    assert (tmp_path / "precious").read_text() == "keep"


def test_dir_writer_never_follows_a_symlink_already_there(tmp_path: Path) -> None:
    # The applier refuses this first; the writer must refuse it on its own as well.
    layer, outside = tmp_path / "layer", tmp_path / "outside"
    layer.mkdir()
    outside.mkdir()
    (layer / "evil").symlink_to(outside)
    attrs = Attrs(mode=0o644, uid=os.getuid(), gid=os.getgid(), mtime_ns=0)
    with DirWriter(layer) as writer:
        with pytest.raises(LayerError, match="symlinks are never followed"):
            writer.regular("evil/x", attrs, io.BytesIO(b"x"), 1)
        with pytest.raises(LayerError):
            writer.implicit_dir("evil/sub")
        with pytest.raises(FileExistsError):
            writer.regular("evil", attrs, io.BytesIO(b"x"), 1)  # O_EXCL, no follow
    assert list(outside.iterdir()) == []


def test_duplicate_members_replace_what_was_there(tmp_path: Path) -> None:
    tar = make_tar(member("d", "dir"), member("d/f", data=b"1"), member("d", data=b"file now"),
                   member("x", data=b"old"), member("x", "symlink", linkname="d"),
                   member("e", "dir", mode=0o700), member("e", "dir", mode=0o711))
    target = tmp_path / "layer"
    apply_layer(io.BytesIO(tar), target)
    assert (target / "d").read_bytes() == b"file now"
    assert os.readlink(target / "x") == "d"
    assert stat.S_IMODE(os.lstat(target / "e").st_mode) == 0o711


def test_names_that_are_not_utf8_survive(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9-\xff")  # latin-1 bytes, as old tars have them
    tar = make_tar(member(name, data=b"x"))
    target = tmp_path / "layer"
    apply_layer(io.BytesIO(tar), target)
    assert os.listdir(os.fsencode(target)) == [b"caf\xe9-\xff"]


def test_many_directories_and_hard_links_across_them(tmp_path: Path) -> None:
    # More directories than the writer keeps descriptors for, with hard links between
    # the first and the last ones: a descriptor in use is never closed under it.
    members = [member(f"d{i:03}/f", data=f"{i}".encode()) for i in range(200)]
    members += [member(f"d{199 - i:03}/h", "hardlink", linkname=f"d{i:03}/f")
                for i in range(200)]
    target = tmp_path / "layer"
    apply_layer(io.BytesIO(make_tar(*members)), target)
    for i in range(200):
        assert os.lstat(target / f"d{199 - i:03}/h").st_ino == \
            os.lstat(target / f"d{i:03}/f").st_ino
