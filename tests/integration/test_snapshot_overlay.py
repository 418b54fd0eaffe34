"""Real layers on real overlayfs mounts (as root): the fixture image, containers' writes,
malicious layers, and an image of 120 layers.

Every test unmounts what it mounted even when it fails (the fixture unmounts anything
left under the test's directory and then fails the test), and removes its data root.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from dockyard.snapshot import (
    InUseError,
    LayerError,
    Snapshotter,
    apply_layer,
    chain_id,
    chain_ids,
)
from dockyard.snapshot._fstree import remove_tree
from dockyard.snapshot._overlay import unmount
from tests.conftest import require_root
from tests.unit.test_snapshot_apply import make_tar, member, sha256

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"


# -- fixtures and helpers ----------------------------------------------------------------------


def mounts_under(directory: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        target = line.split()[4].replace("\\040", " ")
        if target == str(directory) or target.startswith(f"{directory}/"):
            found.append(target)
    return found


@pytest.fixture
def snapshotter(tmp_path: Path) -> Iterator[Snapshotter]:
    require_root()
    root = tmp_path / "root"
    yield Snapshotter(root)
    left = mounts_under(tmp_path)
    for target in sorted(left, key=len, reverse=True):
        unmount(Path(target))
    assert not mounts_under(tmp_path)
    for entry in tmp_path.iterdir():  # the data root and whatever else the test made
        remove_tree(entry)
    assert left == [], f"a test left mounts behind: {left}"


@contextmanager
def mounted(s: Snapshotter, key: str, target: Path) -> Iterator[Path]:
    target.mkdir(exist_ok=True)
    s.mount(key, target)
    try:
        yield target
    finally:
        s.unmount(target)


def docker_save_layers() -> tuple[list[bytes], list[str]]:
    """The fixture image's layer tars (in order) and its config's diff IDs."""
    with tarfile.open(FIXTURES / "fixture-docker20-save.tar") as archive:
        def read(name: str) -> bytes:
            file = archive.extractfile(name)
            assert file is not None
            return file.read()
        manifest = json.loads(read("manifest.json"))[0]
        config = json.loads(read(manifest["Config"]))
        return [read(name) for name in manifest["Layers"]], config["rootfs"]["diff_ids"]


def oci_archive_layers(name: str) -> tuple[list[bytes], list[str], list[str]]:
    """(compressed layer blobs, their media types, the config's diff IDs) of an OCI archive."""
    with tarfile.open(FIXTURES / name) as archive:
        def blob(digest: str) -> bytes:
            file = archive.extractfile(f"blobs/sha256/{digest.split(':')[1]}")
            assert file is not None
            return file.read()
        index_file = archive.extractfile("index.json")
        assert index_file is not None
        manifest = json.loads(blob(json.load(index_file)["manifests"][0]["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        layers = manifest["layers"]
        return ([blob(layer["digest"]) for layer in layers],
                [layer["mediaType"] for layer in layers], config["rootfs"]["diff_ids"])


def add_image(s: Snapshotter, layers: list[bytes], diff_ids: list[str]) -> str:
    parent = None
    for data, chain in zip(layers, chain_ids(diff_ids), strict=True):
        s.add_layer(chain, parent, io.BytesIO(data))
        parent = chain
    assert parent is not None
    return parent


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything under root as comparable facts (not directory mtimes or inode numbers)."""
    facts: dict[str, tuple[object, ...]] = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(directory) / name
            st = os.lstat(path)
            key = "/" + str(path.relative_to(root))
            owner = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            if stat.S_ISREG(st.st_mode):
                facts[key] = ("file", *owner, hashlib.sha256(path.read_bytes()).hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                facts[key] = ("symlink", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                facts[key] = ("dir", *owner)
            else:
                facts[key] = ("node", st.st_mode, st.st_rdev)
    return facts


# -- the fixture image ------------------------------------------------------------------------


def test_fixture_image_merged_view(snapshotter: Snapshotter, tmp_path: Path) -> None:
    layers, diff_ids = docker_save_layers()
    top = add_image(snapshotter, layers, diff_ids)
    assert [snapshotter.layer(c).diff_id for c in chain_ids(diff_ids)] == diff_ids
    snapshotter.prepare("c1", top)
    with mounted(snapshotter, "c1", tmp_path / "rootfs") as rootfs:
        data = rootfs / "data"
        assert sorted(os.listdir(data)) == ["a", "hard", "link", "opaque", "sub"]
        assert (data / "a").read_text() == "one\n"
        assert os.lstat(data / "hard").st_nlink == 2
        assert os.lstat(data / "hard").st_ino == os.lstat(data / "a").st_ino
        assert os.readlink(data / "link") == "/data/a"
        assert os.listdir(data / "sub") == ["c"]
        assert (data / "sub/c").read_text() == "three\n"
        assert os.listdir(data / "opaque") == ["new"]
        assert (data / "opaque/new").read_text() == "new\n"
        assert not os.path.lexists(data / "gone")
        assert (rootfs / "app/hello.txt").read_text() == "hello from a file\n"
        assert os.access(rootfs / "bin/busybox", os.X_OK)
        assert os.readlink(rootfs / "bin/sh") == "busybox"
    assert snapshotter.changes("c1") == []


@pytest.mark.parametrize(("archive", "media_type"), [
    ("fixture-oci.tar", "application/vnd.oci.image.layer.v1.tar+gzip"),
    ("fixture-oci-zstd.tar", "application/vnd.oci.image.layer.v1.tar+zstd"),
])
def test_compressed_fixture_layers(snapshotter: Snapshotter, tmp_path: Path, archive: str,
                                   media_type: str) -> None:
    layers, media_types, diff_ids = oci_archive_layers(archive)
    assert set(media_types) == {media_type}
    top = add_image(snapshotter, layers, diff_ids)  # add_layer checks every diff ID
    snapshotter.prepare("c", top)
    with mounted(snapshotter, "c", tmp_path / "rootfs") as rootfs:
        assert sorted(os.listdir(rootfs / "data")) == ["a", "hard", "link", "opaque", "sub"]
        assert (rootfs / "app/hello.txt").read_text() == "hello from a file\n"


def test_container_writes_changes_and_diff_round_trip(snapshotter: Snapshotter,
                                                      tmp_path: Path) -> None:
    layers, diff_ids = docker_save_layers()
    top = add_image(snapshotter, layers, diff_ids)
    info = snapshotter.prepare("c1", top)
    with mounted(snapshotter, "c1", tmp_path / "rootfs") as rootfs:
        (rootfs / "data/added").write_text("added\n")
        os.link(rootfs / "data/added", rootfs / "data/added2")
        (rootfs / "app/hello.txt").write_text("changed\n")
        (rootfs / "data/link").unlink()
        remove_tree(rootfs / "data/opaque")
        os.chmod(rootfs / "data/sub", 0o700)
        (rootfs / "etc/newdir").mkdir()
        (rootfs / "etc/newdir/x").write_text("x")
        os.chown(rootfs / "etc/newdir/x", 1234, 5678)
        os.chmod(rootfs / "etc/newdir/x", 0o4750)
        os.mkfifo(rootfs / "etc/newdir/fifo")
        os.mknod(rootfs / "etc/newdir/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        remove_tree(rootfs / "bin/vi")
        (rootfs / "bin/vi").mkdir()  # deleted, then a directory of the same name
        merged = tree(rootfs)

        upper = Path(info["upperdir"])
        assert (upper / "data/added").read_text() == "added\n"
        assert os.lstat(upper / "data/link").st_rdev == 0  # a whiteout
        assert [tuple(c) for c in snapshotter.changes("c1")] == [
            ("C", "/app/hello.txt"),
            ("C", "/bin"), ("D", "/bin/vi"),
            ("C", "/data"), ("A", "/data/added"), ("A", "/data/added2"),
            ("D", "/data/link"), ("D", "/data/opaque"), ("C", "/data/sub"),
            ("C", "/etc"), ("A", "/etc/newdir"), ("A", "/etc/newdir/fifo"),
            ("A", "/etc/newdir/null"), ("A", "/etc/newdir/x")]

        diff = b"".join(snapshotter.diff("c1"))
        with tarfile.open(fileobj=io.BytesIO(diff)) as tar:
            names = {m.name: m for m in tar.getmembers()}
        assert names["data/.wh.link"].isreg() and names["data/.wh.opaque"].isreg()
        assert names["bin/vi/.wh..wh..opq"].isreg()
        assert names["data/added2"].islnk() and names["data/added2"].linkname == "data/added"
        assert (names["etc/newdir/x"].mode, names["etc/newdir/x"].uid) == (0o4750, 1234)
        assert not [n for n in names if "trusted.overlay" in str(names[n].pax_headers)]

        new_chain = chain_id(top, sha256(diff))
        assert snapshotter.add_layer(new_chain, top, io.BytesIO(diff)) == sha256(diff)
        assert snapshotter.commit("c1").chain_id == new_chain  # the same changes, once
        snapshotter.prepare("c2", new_chain)
        with mounted(snapshotter, "c2", tmp_path / "rootfs2") as again:
            assert tree(again) == merged
    with pytest.raises(InUseError):
        snapshotter.remove_layer(new_chain)
    snapshotter.remove("c2")
    snapshotter.remove_layer(new_chain)


def test_scratch_snapshot(snapshotter: Snapshotter, tmp_path: Path) -> None:
    snapshotter.prepare("scratch", None)
    with mounted(snapshotter, "scratch", tmp_path / "rootfs") as rootfs:
        assert os.listdir(rootfs) == []
        (rootfs / "hello").write_text("hi\n")
    assert [tuple(c) for c in snapshotter.changes("scratch")] == [("A", "/hello")]
    with tarfile.open(fileobj=io.BytesIO(b"".join(snapshotter.diff("scratch")))) as tar:
        assert tar.getnames() == ["hello"]
    assert os.listdir(snapshotter.root / "empty") == []


def test_mounted_snapshot_cannot_be_removed(snapshotter: Snapshotter, tmp_path: Path) -> None:
    snapshotter.prepare("busy", None)
    with mounted(snapshotter, "busy", tmp_path / "rootfs"):
        with pytest.raises(InUseError):
            snapshotter.remove("busy")
    snapshotter.remove("busy")
    assert snapshotter.snapshots() == []


def test_many_layers_mount(snapshotter: Snapshotter, tmp_path: Path) -> None:
    parent = None
    for i in range(120):
        tar = make_tar(member(f"layers/f{i:03}", data=f"{i}\n".encode()),
                       member("top", data=f"{i}\n".encode()))
        chain = chain_id(parent, sha256(tar))
        snapshotter.add_layer(chain, parent, io.BytesIO(tar))
        parent = chain
    snapshotter.prepare("deep", parent)
    (spec,) = snapshotter.mounts("deep")
    assert len(",".join(spec.options)) > os.sysconf("SC_PAGESIZE")  # needs the short form
    with mounted(snapshotter, "deep", tmp_path / "rootfs") as rootfs:
        assert sorted(os.listdir(rootfs / "layers")) == [f"f{i:03}" for i in range(120)]
        assert (rootfs / "top").read_text() == "119\n"
        assert (rootfs / "layers/f000").read_text() == "0\n"
        (rootfs / "written").write_text("w")
    assert [tuple(c) for c in snapshotter.changes("deep")] == [("A", "/written")]
    assert os.getcwd() != str(snapshotter.root / "l")  # the mount's chdir stayed in its thread


# -- malicious layers ---------------------------------------------------------------------------


def _passwd_facts() -> tuple[str, int, int]:
    st = os.stat("/etc/passwd")
    return hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest(), st.st_nlink, \
        st.st_mtime_ns


def test_dotdot_member_writes_nothing_outside(snapshotter: Snapshotter, tmp_path: Path) -> None:
    base = tmp_path / "sandbox"
    base.mkdir()
    with pytest.raises(LayerError, match=r"'\.\./x'"):
        apply_layer(io.BytesIO(make_tar(member("ok", data=b"1"), member("../x", data=b"2"))),
                    base / "layer")
    assert os.listdir(base) == []  # neither x next to the layer nor the partial layer


def test_absolute_member_is_kept_inside(snapshotter: Snapshotter, tmp_path: Path) -> None:
    name = f"dockyard-test-{uuid.uuid4().hex}"
    target = tmp_path / "layer"
    apply_layer(io.BytesIO(make_tar(member(f"/etc/{name}", data=b"inside"))), target)
    assert (target / "etc" / name).read_bytes() == b"inside"
    assert not os.path.lexists(f"/etc/{name}")


def test_symlink_to_root_then_file_below_it(snapshotter: Snapshotter, tmp_path: Path) -> None:
    before = _passwd_facts()
    tar = make_tar(member("a", "symlink", linkname="/"),
                   member("a/etc/passwd", data=b"evil::0:0::/:/bin/sh\n", uid=0, gid=0))
    chain = chain_id(None, sha256(tar))
    with pytest.raises(LayerError, match="symlink"):
        snapshotter.add_layer(chain, None, io.BytesIO(tar))
    assert _passwd_facts() == before
    assert not snapshotter.has_layer(chain)
    assert os.listdir(snapshotter.root / "tmp") == []
    assert os.listdir(snapshotter.root / "layers") == []

    # The same through a link to a directory the test owns: nothing at all appears there.
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(LayerError):
        apply_layer(io.BytesIO(make_tar(member("a", "symlink", linkname=str(outside)),
                                        member("a/new", data=b"x"))), tmp_path / "layer")
    assert os.listdir(outside) == []


@pytest.mark.parametrize("linkname", ["../../etc/passwd", "/etc/passwd"])
def test_hard_link_outside_the_layer(snapshotter: Snapshotter, tmp_path: Path,
                                     linkname: str) -> None:
    before = _passwd_facts()
    tar = make_tar(member("h", "hardlink", linkname=linkname))
    with pytest.raises(LayerError, match="hard link|escapes"):
        snapshotter.add_layer(chain_id(None, sha256(tar)), None, io.BytesIO(tar))
    assert _passwd_facts() == before
    assert os.listdir(snapshotter.root / "tmp") == []


def test_truncated_gzip_layer(snapshotter: Snapshotter) -> None:
    layers, diff_ids = docker_save_layers()
    data = gzip.compress(layers[0])
    with pytest.raises(LayerError, match="member"):
        snapshotter.add_layer(diff_ids[0], None, io.BytesIO(data[: len(data) // 2]))
    assert not snapshotter.has_layer(diff_ids[0])
    assert os.listdir(snapshotter.root / "tmp") == []
    assert os.listdir(snapshotter.root / "layers") == []
    # The whole stream is fine.
    assert snapshotter.add_layer(diff_ids[0], None, io.BytesIO(data)) == diff_ids[0]
