"""Volumes without a kernel: mount-spec parsing with Docker's messages, the volume store
on disk, copy-up of a tree, path resolution confined to a root, and the emulation
module's errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dockyard.engine.errors import Conflict, InvalidParameter, NotFound
from dockyard.engine.events import EventBus
from dockyard.engine.mounts import UserMount, container_mounts
from dockyard.engine.volumes import ANONYMOUS_LABEL, VolumeService


def _mounts(host_config: dict, config: dict | None = None,
            inherited: list[UserMount] | None = None) -> list[UserMount]:
    return container_mounts(config or {}, host_config, lambda ref: list(inherited or []),
                            create_missing=False)


def test_binds_name_volumes_and_binds_as_docker_shows_them(tmp_path: Path) -> None:
    mounts = _mounts({"Binds": ["data:/data", f"{tmp_path}:/h:ro", "cache:/c:ro,nocopy"],
                      "Mounts": [{"Type": "volume", "Target": "/m"},
                                 {"Type": "tmpfs", "Target": "/t",
                                  "TmpfsOptions": {"SizeBytes": 4096, "Mode": 0o700}}]},
                     {"Volumes": {"/anon": {}, "/data": {}}})
    by_destination = {m.destination: m for m in mounts}
    assert set(by_destination) == {"/data", "/h", "/c", "/m", "/t", "/anon"}
    data = by_destination["/data"]
    assert (data.kind, data.name, data.mode, data.copy_data) == ("volume", "data", "z", True)
    cache = by_destination["/c"]
    assert (cache.read_only, cache.copy_data, cache.mode) == (True, False, "ro,nocopy")
    assert by_destination["/h"].inspect() == {
        "Type": "bind", "Source": str(tmp_path), "Destination": "/h", "Mode": "ro",
        "RW": False, "Propagation": "rprivate"}
    anonymous = by_destination["/anon"]
    assert (anonymous.name, anonymous.mode, anonymous.copy_data) == ("", "", True)
    anonymous.name, anonymous.source = "abc", "/v/abc/_data"
    assert anonymous.inspect() == {"Type": "volume", "Name": "abc", "Source": "/v/abc/_data",
                                   "Destination": "/anon", "Driver": "local", "Mode": "",
                                   "RW": True, "Propagation": ""}
    assert by_destination["/m"].mode == "z" and by_destination["/m"].name == ""
    assert by_destination["/t"].oci()["options"][-2:] == ["size=4096", "mode=700"]
    # parents before children
    assert [m.destination for m in _mounts({"Binds": ["a1:/x/y", "b1:/x"]})] == ["/x", "/x/y"]


def test_volumes_from_copies_mount_points_with_the_mode() -> None:
    source = UserMount("volume", "/v/s/_data", "/shared", False, name="s1", mode="z",
                       copy_data=True)
    mounts = _mounts({"VolumesFrom": ["other:ro"]}, inherited=[source])
    assert (mounts[0].name, mounts[0].read_only, mounts[0].mode, mounts[0].copy_data) == \
        ("s1", True, "", False)
    with pytest.raises(InvalidParameter, match="invalid mode: bogus"):
        _mounts({"VolumesFrom": ["other:bogus"]}, inherited=[source])


@pytest.mark.parametrize(("host_config", "message"), [
    ({"Binds": ["a/b:/d"]}, 'create a/b: "a/b" includes invalid characters for a local '
                            'volume name'),
    ({"Binds": ["a:/d"]}, "create a: volume name is too short"),
    ({"Binds": ["/foo:rw"]}, "invalid volume specification: '/foo:rw'"),
    ({"Binds": ["a:/b:c:d"]}, "invalid volume specification: 'a:/b:c:d'"),
    ({"Binds": ["vol:data"]}, "invalid mount config for type \"volume\": invalid mount "
                              "path: 'data' mount path must be absolute"),
    ({"Binds": ["vol:/d:bogus"]}, "invalid mode: bogus"),
    ({"Binds": ["vol:/d:ro,rw"]}, "invalid mode: ro,rw"),
    ({"Binds": ["vol:/d", "other:/d"]}, "Duplicate mount point: /d"),
    ({"Mounts": [{"Type": "tmpfs", "Source": "x", "Target": "/x"}]},
     "invalid mount config for type \"tmpfs\": field Source must not be specified"),
    ({"Mounts": [{"Type": "bind", "Target": "/x"}]},
     "invalid mount config for type \"bind\": field Source must not be empty"),
    ({"Mounts": [{"Type": "bind", "Source": "/no/such/dir", "Target": "/x"}]},
     "bind source path does not exist: /no/such/dir"),
    ({"Mounts": [{"Type": "volume", "Target": "/x", "BindOptions": {}}]}, ""),
    ({"Mounts": [{"Type": "volume", "Target": "/x",
                  "BindOptions": {"Propagation": "shared"}}]},
     "field BindOptions must not be specified"),
    ({"Mounts": [{"Type": "volume", "Source": "/abs", "Target": "/x"}]},
     "create /abs: \"/abs\" includes invalid characters"),
    ({"Mounts": [{"Type": "weird", "Target": "/x"}]}, "mount type unknown: \"weird\""),
    ({"VolumeDriver": "flocker"}, "plugin \"flocker\" not found"),
])
def test_bad_mounts_are_refused_with_dockers_messages(host_config: dict, message: str) -> None:
    if not message:
        _mounts(host_config)  # empty options of another type are harmless
        return
    with pytest.raises(InvalidParameter) as caught:
        _mounts(host_config)
    assert message in str(caught.value)


def test_volume_store_create_inspect_remove_prune(tmp_path: Path) -> None:
    users: dict[str, list[str]] = {}
    service = VolumeService(tmp_path / "volumes", EventBus(), lambda: users)
    named = service.create("named1", labels={"k": "v"})
    assert service.create("named1") is named  # an existing volume is returned as it is
    view = service.inspect("named1")
    assert view == {"CreatedAt": named["CreatedAt"], "Driver": "local",
                    "Labels": {"k": "v"}, "Mountpoint": str(tmp_path / "volumes/named1/_data"),
                    "Name": "named1", "Options": None, "Scope": "local"}
    anonymous = service.create()
    assert len(anonymous["Name"]) == 64 and anonymous["Labels"] == {ANONYMOUS_LABEL: ""}
    (service.path("named1") / "f").write_text("12345")
    # the state on disk is the truth: a second service sees the same volumes
    again = VolumeService(tmp_path / "volumes", EventBus(), lambda: users)
    assert {v["Name"] for v in again.all()} == {"named1", anonymous["Name"]}
    for options, message in (({"foo": "bar"}, 'create x1: invalid option: "foo"'),
                             ({"type": "tmpfs"}, 'missing required option: "device"'),
                             ({"o": "size=1m", "type": "tmpfs"}, "\"device\"")):
        with pytest.raises(InvalidParameter, match=message):
            service.create("x1", options=options)
    assert not (tmp_path / "volumes/x1").exists()
    with pytest.raises(NotFound, match="get nosuch: no such volume"):
        service.remove("nosuch")
    service.remove("nosuch", force=True)
    users["named1"] = ["c" * 64]
    with pytest.raises(Conflict, match=f"remove named1: volume is in use - \\[{'c' * 64}\\]"):
        service.remove("named1")
    assert service.prune(lambda labels: True) == ([anonymous["Name"]], 0)
    assert service.prune(lambda labels: True, everything=True) == ([], 0)  # in use
    users.clear()
    assert service.prune(lambda labels: "k" not in labels, everything=True) == ([], 0)
    assert service.prune(lambda labels: True, everything=True) == (["named1"], 5)
    assert os.listdir(tmp_path / "volumes") == []


def test_copy_up_keeps_links_modes_and_owners(tmp_path: Path) -> None:
    from dockyard.engine._volume_copy import copy_up

    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "a").write_text("one")
    os.link(source / "a", source / "hard")
    os.symlink("/data/a", source / "link")
    (source / "sub" / "b").write_text("two")
    os.chmod(source / "sub" / "b", 0o4755)
    os.chmod(source / "sub", 0o750)
    os.utime(source / "sub", (1_000_000, 1_000_000))
    owned = os.geteuid() == 0  # chown needs root; the compat tests run as root
    if owned:
        os.chown(source / "sub" / "b", 1234, 5678)
        os.chmod(source / "sub" / "b", 0o4755)  # chown cleared setuid
    os.setxattr(source / "a", "user.dockyard", b"kept")
    target = tmp_path / "dst"
    target.mkdir()
    copy_up(source, target)
    assert sorted(os.listdir(target)) == ["a", "hard", "link", "sub"]
    assert os.stat(target / "hard").st_ino == os.stat(target / "a").st_ino
    assert os.readlink(target / "link") == "/data/a"
    assert (target / "sub" / "b").read_text() == "two"
    assert os.stat(target / "sub" / "b").st_mode & 0o7777 == 0o4755
    assert os.stat(target / "sub").st_mode & 0o7777 == 0o750
    assert os.stat(target / "sub").st_mtime == 1_000_000
    assert os.getxattr(target / "a", "user.dockyard") == b"kept"
    if owned:
        assert (os.stat(target / "sub" / "b").st_uid, os.stat(target / "sub" / "b").st_gid) \
            == (1234, 5678)


def test_paths_resolve_inside_the_root_only(tmp_path: Path) -> None:
    from dockyard.engine._volume_copy import resolve_in_root

    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    (root / "etc").mkdir()
    os.symlink("/real", root / "abs")
    os.symlink("../../../../etc", root / "escape")
    assert resolve_in_root(root, "/abs") == root / "real"
    assert resolve_in_root(root, "/escape") == root / "etc"  # not the host's /etc
    assert resolve_in_root(root, "/missing/x") is None


def test_a_missing_emulator_says_what_to_install(tmp_path: Path) -> None:
    from dockyard.engine import emulation

    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    (binfmt / "register").write_text("")  # stands for a mounted binfmt_misc
    with pytest.raises(emulation.EmulatorMissing) as caught:
        emulation.ensure_emulator("arm64", binfmt_dir=binfmt, config_dirs=(tmp_path,))
    assert "apt-get install qemu-user-static" in str(caught.value)
    assert "linux/arm64" in str(caught.value)
    (tmp_path / "qemu-aarch64.conf").write_text(
        ":qemu-aarch64:M::\\x7fELF:\\xff\\xff\\xff\\xff:/no/such/qemu-aarch64:OP\n")
    with pytest.raises(emulation.EmulatorMissing, match="/no/such/qemu-aarch64 .* missing"):
        emulation.ensure_emulator("arm64", binfmt_dir=binfmt, config_dirs=(tmp_path,))
    (binfmt / "qemu-aarch64").write_text("enabled\ninterpreter /x\nflags: OP\n")
    with pytest.raises(emulation.EmulatorMissing, match="without the F"):
        emulation.ensure_emulator("arm64", binfmt_dir=binfmt, config_dirs=(tmp_path,))
    (binfmt / "qemu-aarch64").write_text("enabled\ninterpreter /x\nflags: POF\n")
    assert emulation.ensure_emulator("arm64", binfmt_dir=binfmt) == "qemu-aarch64"
    with pytest.raises(emulation.EmulatorMissing, match="no emulator is known"):
        emulation.ensure_emulator("pdp11", binfmt_dir=binfmt)


def test_native_platforms_need_no_emulation() -> None:
    from dockyard.engine.emulation import needs_emulation
    from dockyard.image import host_platform, parse_platform

    assert not needs_emulation(host_platform())
    foreign = "linux/arm64" if host_platform().architecture == "amd64" else "linux/amd64"
    assert needs_emulation(parse_platform(foreign))
