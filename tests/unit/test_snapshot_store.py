"""The Snapshotter's bookkeeping, without mounting anything (no root needed)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from dockyard.snapshot import (
    AlreadyExistsError,
    InUseError,
    LayerError,
    NotFoundError,
    Snapshotter,
    chain_id,
    chain_ids,
)
from dockyard.snapshot._overlay import compact_lowerdirs
from tests.unit.test_snapshot_apply import make_tar, member, sha256


def layer_tar(*names: str) -> bytes:
    return make_tar(*(member(name, data=name.encode()) for name in names))


def add(snapshotter: Snapshotter, parent: str | None, tar: bytes) -> str:
    chain = chain_id(parent, sha256(tar))
    assert snapshotter.add_layer(chain, parent, io.BytesIO(tar)) == sha256(tar)
    return chain


class Unreadable:
    def read(self, size: int = -1, /) -> bytes:
        raise AssertionError("a layer already present must not be read again")


def test_add_layer_is_idempotent(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    tar = layer_tar("a")
    chain = add(s, None, tar)
    assert s.has_layer(chain)
    assert s.add_layer(chain, None, Unreadable()) == sha256(tar)
    info = s.layer(chain)
    assert (info.diff_id, info.parent, info.size) == (sha256(tar), None, 1)
    assert len(list((tmp_path / "root/layers").iterdir())) == 1
    assert list((tmp_path / "root/tmp").iterdir()) == []


def test_content_must_match_the_chain_id(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    wrong = chain_id(None, sha256(b"something else"))
    with pytest.raises(LayerError, match="chain ID"):
        s.add_layer(wrong, None, io.BytesIO(layer_tar("a")))
    assert not s.has_layer(wrong)
    assert list((tmp_path / "root/layers").iterdir()) == []
    assert list((tmp_path / "root/tmp").iterdir()) == []


def test_bad_ids_and_missing_parents(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    tar = layer_tar("a")
    with pytest.raises(ValueError):
        s.add_layer("sha256:../../etc", None, io.BytesIO(tar))
    missing = sha256(b"no such layer")
    with pytest.raises(NotFoundError):
        s.add_layer(chain_id(missing, sha256(tar)), missing, io.BytesIO(tar))
    with pytest.raises(NotFoundError):
        s.prepare("c", missing)
    with pytest.raises(NotFoundError):
        s.remove_layer(missing)
    with pytest.raises(NotFoundError):
        s.mounts("nothing")
    with pytest.raises(ValueError):
        Snapshotter(tmp_path / "a:b")


def test_remove_layer_refuses_while_used(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    base = add(s, None, layer_tar("a"))
    top = add(s, base, layer_tar("b"))
    s.prepare("c1", top)
    with pytest.raises(InUseError, match="parent"):
        s.remove_layer(base)
    with pytest.raises(InUseError, match="c1"):
        s.remove_layer(top)
    s.remove("c1")
    s.remove_layer(top)
    s.remove_layer(base)
    assert s.layers() == []
    assert list((tmp_path / "root/l").iterdir()) == []
    assert list((tmp_path / "root/tmp").iterdir()) == []


def test_prepare_and_mounts(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    chain = chain_ids([sha256(layer_tar(n)) for n in ("a", "b", "c")])
    parent = None
    for name, c in zip("abc", chain, strict=True):
        assert add(s, parent, layer_tar(name)) == c
        parent = c
    info = s.prepare("container-1", chain[-1])
    assert info["parent"] == chain[-1]
    assert Path(info["upperdir"]).is_dir() and Path(info["workdir"]).is_dir()
    with pytest.raises(AlreadyExistsError):
        s.prepare("container-1", None)
    assert [i["key"] for i in s.snapshots()] == ["container-1"]

    (mount,) = s.mounts("container-1")
    assert (mount.type, mount.source) == ("overlay", "overlay")
    options = dict(o.split("=", 1) for o in mount.options)
    lowers = options["lowerdir"].split(":")
    # topmost first, through the short links in root/l
    assert [os.listdir(p) for p in lowers] == [["c"], ["b"], ["a"]]
    assert all(Path(p).parent == tmp_path / "root/l" for p in lowers)
    assert options["upperdir"] == info["upperdir"]
    assert options["workdir"] == info["workdir"]
    assert options["index"] == options["redirect_dir"] == options["metacopy"] == "off"

    s.prepare("scratch", None)
    (mount,) = s.mounts("scratch")
    empty = dict(o.split("=", 1) for o in mount.options)["lowerdir"]
    assert empty == str(tmp_path / "root/empty") and os.listdir(empty) == []


def test_lost_links_are_recreated(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    chain = add(s, None, layer_tar("a"))
    s.prepare("c", chain)
    for link in (tmp_path / "root/l").iterdir():
        link.unlink()
    (mount,) = s.mounts("c")
    lower = dict(o.split("=", 1) for o in mount.options)["lowerdir"]
    assert os.listdir(lower) == ["a"]


def test_compact_lowerdirs_makes_them_relative() -> None:
    lowers = [f"/var/lib/dockyard/snapshots/l/{i:026d}" for i in range(120)]
    options = ["index=off", "lowerdir=" + ":".join(lowers), "upperdir=/u", "workdir=/w"]
    directory, compacted = compact_lowerdirs(options)
    assert directory == "/var/lib/dockyard/snapshots/l"
    assert compacted[1] == "lowerdir=" + ":".join(f"{i:026d}" for i in range(120))
    assert compacted[2:] == ["upperdir=/u", "workdir=/w"]
    assert len(",".join(compacted)) < 4096 < len(",".join(options))


class GatedStream:
    """Holds every racer at the first read until all of them have got that far."""

    def __init__(self, data: bytes, gate: threading.Barrier) -> None:
        self._data = io.BytesIO(data)
        self._gate = gate
        self._waited = False

    def read(self, size: int = -1, /) -> bytes:
        if not self._waited:
            self._waited = True
            self._gate.wait(timeout=30)
        return self._data.read(size)


def test_concurrent_add_layer_of_one_chain(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    others = [Snapshotter(tmp_path / "root") for _ in range(3)]  # separate instances too
    tar = make_tar(*(member(f"f{i}", data=os.urandom(4096)) for i in range(50)))
    chain = chain_id(None, sha256(tar))
    racers = 6
    gate = threading.Barrier(racers)
    results: list[object] = []

    def race(index: int) -> None:
        snapshotter = (s, *others)[index % 4]
        try:
            results.append(snapshotter.add_layer(chain, None, GatedStream(tar, gate)))
        except BaseException as e:  # reported below
            results.append(e)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [sha256(tar)] * racers
    assert len(list((tmp_path / "root/layers").iterdir())) == 1
    assert len(list((tmp_path / "root/l").iterdir())) == 1
    assert list((tmp_path / "root/tmp").iterdir()) == []
    assert sorted(os.listdir(tmp_path / "root/l" / os.listdir(tmp_path / "root/l")[0])) == \
        sorted(f"f{i}" for i in range(50))


def test_recovery_removes_what_a_dead_process_left(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    chain = add(s, None, layer_tar("a"))
    child = subprocess.Popen(["true"])
    child.wait()
    stale = tmp_path / f"root/tmp/{child.pid}-0123456789abcdef"
    (stale / "diff/usr").mkdir(parents=True)
    mine = tmp_path / f"root/tmp/{os.getpid()}-fedcba9876543210"
    mine.mkdir()
    (tmp_path / "root/l/DANGLING").symlink_to("../layers/0000000000000000/diff")
    Snapshotter(tmp_path / "root")
    assert not stale.exists()
    assert mine.exists()  # may be another Snapshotter of this process, at work
    assert not os.path.lexists(tmp_path / "root/l/DANGLING")
    assert s.has_layer(chain)


def test_changes_diff_commit_and_usage_of_an_unmounted_upper(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    base = add(s, None, make_tar(member("etc", "dir", mtime=100),
                                 member("etc/config", data=b"old"),
                                 member("etc/keep", data=b"same")))
    info = s.prepare("c", base)
    upper = Path(info["upperdir"])
    # What overlayfs would leave after: edit etc/config, add etc/new and var/log/x.
    (upper / "etc").mkdir()
    os.utime(upper / "etc", (100, 100))
    (upper / "etc/config").write_bytes(b"new!")
    (upper / "etc/new").write_bytes(b"added")
    os.utime(upper / "etc", (200, 200))  # a new name changes the directory's mtime
    (upper / "var/log").mkdir(parents=True)
    (upper / "var/log/x").write_bytes(b"x")
    (upper / "var/log/link").symlink_to("x")
    os.link(upper / "var/log/x", upper / "var/log/hard")

    assert [tuple(c) for c in s.changes("c")] == [
        ("C", "/etc"), ("C", "/etc/config"), ("A", "/etc/new"),
        ("A", "/var"), ("A", "/var/log"), ("A", "/var/log/hard"), ("A", "/var/log/link"),
        ("A", "/var/log/x")]

    data = b"".join(s.diff("c"))
    assert data == b"".join(s.diff("c"))  # deterministic
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        entries = [(m.name, m.type, m.linkname) for m in tar.getmembers()]
    assert entries == [
        ("etc", tarfile.DIRTYPE, ""), ("etc/config", tarfile.REGTYPE, ""),
        ("etc/new", tarfile.REGTYPE, ""), ("var", tarfile.DIRTYPE, ""),
        ("var/log", tarfile.DIRTYPE, ""), ("var/log/hard", tarfile.REGTYPE, ""),
        ("var/log/link", tarfile.SYMTYPE, "x"), ("var/log/x", tarfile.LNKTYPE, "var/log/hard")]

    usage = s.usage()
    assert usage.layers == {base: len(b"old") + len(b"same")}
    assert usage.snapshots == {"c": len(b"new!") + len(b"added") + 1 + 1}

    committed = s.commit("c")
    assert committed.diff_id == sha256(data)
    assert committed.chain_id == chain_id(base, sha256(data))
    assert committed.parent == base
    s.prepare("c2", committed.chain_id)
    with pytest.raises(InUseError):
        s.remove_layer(base)


def test_diff_streams_large_files_in_chunks(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    upper = Path(s.prepare("c", None)["upperdir"])
    content = os.urandom(3 * 1024 * 1024 + 17)
    (upper / "big").write_bytes(content)
    weird = os.fsdecode(b"caf\xe9")
    (upper / weird).write_bytes(b"latin-1 name")
    chunks = list(s.diff("c"))
    assert max(len(c) for c in chunks) <= 1024 * 1024
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        big = tar.extractfile("big")
        assert big is not None and big.read() == content
        assert tar.getnames() == ["big", weird]
