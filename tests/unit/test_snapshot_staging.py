"""Layers staged concurrently and published in order; layers published without a sync, and
what the next start does with them after a reboot (no root needed)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from dockyard.snapshot import LayerError, NotFoundError, Snapshotter, chain_id, chain_ids
from dockyard.snapshot import _snapshotter as snapshotter_module
from tests.unit.test_snapshot_apply import make_tar, member, sha256
from tests.unit.test_snapshot_store import layer_tar


def _record(root: Path, chain: str) -> dict[str, object]:
    short = chain[len("sha256:"):][:16]
    document: dict[str, object] = json.loads((root / "layers" / short / "layer.json")
                                             .read_text())
    return document


def _staging_left(root: Path) -> list[str]:
    return os.listdir(root / "tmp")


def test_layers_staged_concurrently_are_published_in_order(tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    tars = [layer_tar(f"file{i}") for i in range(4)]
    chains = chain_ids([sha256(t) for t in tars])
    staged: dict[int, object] = {}

    def stage(i: int) -> None:
        staged[i] = s.stage_layer(io.BytesIO(tars[i]))

    threads = [threading.Thread(target=stage, args=(i,)) for i in reversed(range(4))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert s.layers() == []  # nothing visible before it is published
    # The top layer cannot be published before its parent.
    with pytest.raises(NotFoundError):
        s.publish_layer(staged[1], chains[1], chains[0])  # type: ignore[arg-type]
    assert not s.has_layer(chains[1])
    for i in range(4):
        if i == 1:
            staged[1] = s.stage_layer(io.BytesIO(tars[1]))  # used up by the refusal
        parent = chains[i - 1] if i else None
        assert s.publish_layer(staged[i], chains[i], parent) == sha256(tars[i])  # type: ignore[arg-type]
    assert [s.layer(c).parent for c in chains] == [None, *chains[:-1]]
    assert _staging_left(tmp_path / "root") == []


def test_a_staged_layer_with_other_content_is_refused_and_discard_cleans_up(
        tmp_path: Path) -> None:
    s = Snapshotter(tmp_path / "root")
    staged = s.stage_layer(io.BytesIO(layer_tar("a")))
    with pytest.raises(LayerError, match="chain ID"):
        s.publish_layer(staged, chain_id(None, sha256(b"other")), None)
    assert _staging_left(tmp_path / "root") == []
    s.discard_staged(s.stage_layer(io.BytesIO(layer_tar("b"))))
    assert _staging_left(tmp_path / "root") == [] and s.layers() == []
    # A broken stream leaves no staging directory either.
    with pytest.raises(LayerError):
        s.stage_layer(io.BytesIO(layer_tar("c")[:700]))
    assert _staging_left(tmp_path / "root") == []


def test_unsynced_layers_are_marked_until_settled(tmp_path: Path) -> None:
    root = tmp_path / "root"
    s = Snapshotter(root)
    tar = layer_tar("a")
    chain = chain_id(None, sha256(tar))
    s.add_layer(chain, None, io.BytesIO(tar), durable=False)
    assert _record(root, chain)["unsynced_boot"] == snapshotter_module.boot_id()
    assert s.layer(chain).diff_id == sha256(tar)
    s.settle()
    assert "unsynced_boot" not in _record(root, chain)
    durable = add_unsynced(s, chain, layer_tar("b"), durable=True)
    assert "unsynced_boot" not in _record(root, durable)


def add_unsynced(s: Snapshotter, parent: str | None, tar: bytes, durable: bool = False) -> str:
    chain = chain_id(parent, sha256(tar))
    s.add_layer(chain, parent, io.BytesIO(tar), durable=durable)
    return chain


def test_settle_later_runs_in_the_background(tmp_path: Path) -> None:
    root = tmp_path / "root"
    s = Snapshotter(root)
    chain = add_unsynced(s, None, layer_tar("a"))
    s.settle_later()
    s.settle_later()  # asked again while it runs: one more pass, not a second thread
    settler = s._settler
    if settler is not None:
        settler.join(30)
    assert "unsynced_boot" not in _record(root, chain)


def _reboot(root: Path, chains: list[str], boot: str = "an-earlier-boot") -> None:
    """Make these layers look as if written before the system went down."""
    for chain in chains:
        short = chain[len("sha256:"):][:16]
        path = root / "layers" / short / "layer.json"
        document = json.loads(path.read_text())
        document["unsynced_boot"] = boot
        path.write_text(json.dumps(document))


def test_after_a_reboot_unsynced_layers_and_those_above_are_removed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    s = Snapshotter(root)
    base = add_unsynced(s, None, layer_tar("base"), durable=True)
    middle = add_unsynced(s, base, layer_tar("middle"))
    top = add_unsynced(s, middle, layer_tar("top"), durable=True)  # on an unsynced parent
    other = add_unsynced(s, None, layer_tar("other"))  # of this boot: still in the cache
    _reboot(root, [middle])
    s2 = Snapshotter(root)
    assert s2.has_layer(base) and s2.has_layer(other)
    assert not s2.has_layer(middle) and not s2.has_layer(top)
    assert sorted(os.listdir(root / "l")) == sorted(
        [s2._layer_record(base).link, s2._layer_record(other).link])
    assert _staging_left(root) == []
    # Unpacked again (from the blob, by the engine), the layer is as good as new.
    assert add_unsynced(s2, base, layer_tar("middle")) == middle


def test_after_a_reboot_an_unsynced_layer_in_use_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    s = Snapshotter(root)
    base = add_unsynced(s, None, layer_tar("base"))
    top = add_unsynced(s, base, layer_tar("top"))
    s.prepare("container", top)
    _reboot(root, [base, top])
    s2 = Snapshotter(root)
    assert s2.has_layer(base) and s2.has_layer(top)
    assert s2.mounts("container")


def test_a_layer_record_a_power_cut_damaged_is_removed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    s = Snapshotter(root)
    base = add_unsynced(s, None, layer_tar("base"))
    top = add_unsynced(s, base, layer_tar("top"))
    short = base[len("sha256:"):][:16]
    (root / "layers" / short / "layer.json").write_bytes(b"")  # data never written
    assert not s.has_layer(base)
    s2 = Snapshotter(root)
    assert s2.layers() == []
    assert not s2.has_layer(top)
    assert os.listdir(root / "layers") == []


def test_a_killed_process_leaves_its_unsynced_layers_to_be_settled(tmp_path: Path) -> None:
    root = tmp_path / "root"
    s = Snapshotter(root)
    chain = add_unsynced(s, None, layer_tar("a"))
    # A new process (same boot): the layer is kept, and synced in the background.
    s2 = Snapshotter(root)
    assert s2.has_layer(chain)
    settler = s2._settler
    if settler is not None:
        settler.join(30)
    assert "unsynced_boot" not in _record(root, chain)


def test_sparse_members_are_extracted_with_their_holes(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    with open(source / "sparse", "wb") as f:
        f.truncate(3 << 20)
        f.seek(1 << 20)
        f.write(b"hello")
    (source / "after").write_text("small\n")
    for form in ("gnu", "posix"):
        archive = tmp_path / f"{form}.tar"
        subprocess.run(["tar", "--sparse", f"--format={form}", "-cf", str(archive), "-C",
                        str(source), "sparse", "after"], check=True)
        s = Snapshotter(tmp_path / f"root-{form}")
        tar = archive.read_bytes()
        chain = add_unsynced(s, None, tar, durable=True)
        diff = Path(os.readlink(tmp_path / f"root-{form}/l" / s._layer_record(chain).link))
        layer = tmp_path / f"root-{form}/l" / diff
        assert (layer / "sparse").read_bytes() == (source / "sparse").read_bytes()
        assert (layer / "after").read_text() == "small\n"
    shutil.rmtree(source)


def test_large_members_and_members_between_them(tmp_path: Path) -> None:
    big = os.urandom(3 << 20) + b"tail"
    tar = make_tar(member("big", data=big), member("dir", "dir"),
                   member("dir/small", data=b"x" * 513), member("empty", data=b""),
                   member("big2", data=big[::-1]))
    s = Snapshotter(tmp_path / "root")
    chain = add_unsynced(s, None, tar)
    layer = tmp_path / "root/l" / s._layer_record(chain).link
    assert (layer / "big").read_bytes() == big
    assert (layer / "big2").read_bytes() == big[::-1]
    assert (layer / "dir/small").read_bytes() == b"x" * 513
    assert (layer / "empty").read_bytes() == b""
    # Cut inside a member's data: an error, not a shorter file.
    with pytest.raises(LayerError, match="'big2'"):
        s.stage_layer(io.BytesIO(tar[:len(tar) - (2 << 20)]))
