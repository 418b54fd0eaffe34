"""COPY/ADD semantics on plain directories: sources, wildcards, destinations, ownership,
modes, archives, and the content hash."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from dockyard.build import BuildError
from dockyard.build._copy import Ownership, copy_sources, destination, write_file
from dockyard.build._sources import hash_sources, resolve_sources


@pytest.fixture()
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "dir" / "sub").mkdir(parents=True)
    (ctx / "dir" / "a.txt").write_text("a")
    (ctx / "dir" / "sub" / "b.txt").write_text("b")
    (ctx / "x.txt").write_text("x")
    (ctx / "y.txt").write_text("y")
    (ctx / "z.md").write_text("z")
    os.symlink("x.txt", ctx / "link")
    return ctx


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    rootfs = tmp_path / "root"
    (rootfs / "existing").mkdir(parents=True)
    return rootfs


def _copy(context: Path, root: Path, patterns: list[str], dest: str, workdir: str = "/",
          **kw: object) -> None:
    sources = resolve_sources(str(context), patterns, "COPY", from_context=True)
    target, is_dir = destination(dest, workdir)
    copy_sources(str(root), sources, target, is_dir, kw.get("owner", Ownership()),  # type: ignore[arg-type]
                 kw.get("mode"), "COPY", extract_archives=bool(kw.get("add")))  # type: ignore[arg-type]


def test_directory_copies_its_contents(context: Path, root: Path) -> None:
    _copy(context, root, ["dir"], "/copied")
    assert sorted(os.listdir(root / "copied")) == ["a.txt", "sub"]
    assert (root / "copied" / "sub" / "b.txt").read_text() == "b"


def test_file_to_path_to_slash_and_to_existing_dir(context: Path, root: Path) -> None:
    _copy(context, root, ["x.txt"], "/new/name")
    assert (root / "new" / "name").read_text() == "x"
    _copy(context, root, ["x.txt"], "/into/")
    assert (root / "into" / "x.txt").read_text() == "x"
    _copy(context, root, ["x.txt"], "/existing")
    assert (root / "existing" / "x.txt").read_text() == "x"
    _copy(context, root, ["x.txt"], "rel", workdir="/work")
    assert (root / "work" / "rel").read_text() == "x"


def test_wildcards_and_several_sources(context: Path, root: Path) -> None:
    _copy(context, root, ["*.txt"], "/g/")
    assert sorted(os.listdir(root / "g")) == ["x.txt", "y.txt"]
    with pytest.raises(BuildError, match="must be a directory and end with a /"):
        _copy(context, root, ["*.txt"], "/g2")


def test_symlinks_are_copied_as_links(context: Path, root: Path) -> None:
    _copy(context, root, ["link"], "/l")
    assert os.readlink(root / "l") == "x.txt"


def test_missing_and_outside_sources(context: Path, root: Path) -> None:
    with pytest.raises(BuildError) as caught:
        _copy(context, root, ["nope"], "/x")
    assert str(caught.value) == ("COPY failed: file not found in build context or excluded "
                                 "by .dockerignore: stat nope: file does not exist")
    with pytest.raises(BuildError, match="forbidden path outside the build context"):
        _copy(context, root, ["../etc/passwd"], "/x")
    with pytest.raises(BuildError, match="no source files were specified"):
        _copy(context, root, ["*.none"], "/x/")


def test_ownership_mode_and_new_parents(context: Path, root: Path) -> None:
    _copy(context, root, ["x.txt"], "/p/q/x", owner=Ownership(1000, 1001), mode=0o600)
    st = os.stat(root / "p" / "q" / "x")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (1000, 1001, 0o600)
    parent = os.stat(root / "p")
    assert (parent.st_uid, parent.st_mode & 0o777) == (1000, 0o755)


def test_symlink_in_root_does_not_lead_out(context: Path, root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), root / "escape")
    _copy(context, root, ["x.txt"], "/escape/")
    assert not (outside / "x.txt").exists()


def test_add_extracts_archives(context: Path, root: Path) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        info = tarfile.TarInfo("inner/t.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    (context / "a.tar.gz").write_bytes(data.getvalue())
    sources = resolve_sources(str(context), ["a.tar.gz"], "ADD", from_context=True)
    copy_sources(str(root), sources, "/ex", False, Ownership(), None, "ADD",
                 extract_archives=True)
    assert (root / "ex" / "inner" / "t.txt").read_text() == "hi"


def test_heredoc_file(root: Path) -> None:
    write_file(str(root), "/etc/motd", b"hello\n", Ownership(), None)
    assert (root / "etc" / "motd").read_text() == "hello\n"
    assert os.stat(root / "etc" / "motd").st_mode & 0o777 == 0o644


def test_hash_follows_content_not_times(context: Path) -> None:
    def digest() -> str:
        return hash_sources(resolve_sources(str(context), ["dir"], "COPY", True))

    first = digest()
    assert first.startswith("dir:")
    os.utime(context / "dir" / "a.txt", (1, 1))
    assert digest() == first
    (context / "dir" / "a.txt").write_text("changed")
    assert digest() != first
    single = hash_sources(resolve_sources(str(context), ["x.txt"], "COPY", True))
    assert single.startswith("file:")
    several = hash_sources(resolve_sources(str(context), ["x.txt", "y.txt"], "COPY", True))
    assert several.startswith("multi:")


def test_context_symlinks_resolve_inside_the_context(context: Path, root: Path,
                                                     tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host file")
    os.symlink(str(outside), context / "linkdir")
    with pytest.raises(BuildError, match="file not found in build context"):
        _copy(context, root, ["linkdir/secret"], "/stolen")
    assert not (root / "stolen").exists()


def test_chown_names_from_the_images_files(root: Path) -> None:
    from dockyard.build._copy import ownership

    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\nbob:x:1000:\n")
    assert ownership(str(root), "bob") == Ownership(1000, 1000)
    assert ownership(str(root), "bob:staff") == Ownership(1000, 50)
    assert ownership(str(root), "7:8") == Ownership(7, 8)
    with pytest.raises(BuildError, match="can't find uid for user alice"):
        ownership(str(root), "alice")
