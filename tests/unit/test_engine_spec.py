"""The OCI config the engine builds from a Docker container configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from dockyard.engine.errors import InvalidParameter
from dockyard.engine.oci_spec import (
    DEFAULT_CAPABILITIES,
    ContainerPaths,
    build_spec,
    capability_set,
)
from dockyard.engine.seccomp_profile import default_profile, to_oci
from dockyard.engine.users import resolve_user
from dockyard.runtime.config import parse_spec


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "app:x:1000:1000::/home/app:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nwheel:x:10:app\n"
                                        "audio:x:29:\n")
    return root


def paths_for(root: Path) -> ContainerPaths:
    return ContainerPaths(root, root.parent / "hostname", root.parent / "hosts",
                          root.parent / "resolv.conf", None)


def test_default_spec_is_valid_and_dockerlike(rootfs: Path) -> None:
    spec = build_spec("a" * 64, {"Cmd": ["sh"], "Env": ["A=1"]}, {}, paths_for(rootfs),
                      "/dockyard/" + "a" * 64)
    parsed = parse_spec(spec)  # the runtime accepts it
    assert parsed.hostname == "a" * 12
    assert spec["process"]["env"][0].startswith("PATH=")
    assert "HOSTNAME=" + "a" * 12 in spec["process"]["env"]
    assert spec["process"]["capabilities"]["bounding"] == DEFAULT_CAPABILITIES
    assert "/proc/kcore" in spec["linux"]["maskedPaths"]
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    destinations = [m["destination"] for m in spec["mounts"]]
    assert {"/proc", "/dev", "/dev/pts", "/sys", "/dev/shm", "/etc/hosts", "/etc/hostname",
            "/etc/resolv.conf"} <= set(destinations)
    assert {"type": "network"} in spec["linux"]["namespaces"]


def test_capabilities_add_drop_all() -> None:
    assert "CAP_NET_ADMIN" in capability_set({"CapAdd": ["NET_ADMIN"]})
    assert "CAP_CHOWN" not in capability_set({"CapDrop": ["chown"]})
    assert capability_set({"CapDrop": ["ALL"], "CapAdd": ["CAP_KILL"]}) == ["CAP_KILL"]
    assert "CAP_SYS_ADMIN" in capability_set({"Privileged": True})
    with pytest.raises(InvalidParameter, match="unknown capability"):
        capability_set({"CapAdd": ["FLY"]})


def test_seccomp_profile_follows_capabilities() -> None:
    plain = to_oci(default_profile(), DEFAULT_CAPABILITIES, "amd64", (6, 1))
    admin = to_oci(default_profile(), [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"], "amd64", (6, 1))
    names = {n for rule in plain["syscalls"] for n in rule["names"]}
    admin_names = {n for rule in admin["syscalls"] if rule["action"] == "SCMP_ACT_ALLOW"
                   for n in rule["names"]}
    assert "mount" not in names and "mount" in admin_names
    assert plain["architectures"][0] == "SCMP_ARCH_X86_64"
    assert "arch_prctl" in names and "s390_runtime_instr" not in names


def test_resources_and_options(rootfs: Path) -> None:
    host = {"Memory": 64 << 20, "NanoCpus": 1_500_000_000, "CpuShares": 512, "PidsLimit": 50,
            "Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}], "ReadonlyRootfs": True,
            "SecurityOpt": ["no-new-privileges"], "Tmpfs": {"/run": "size=1m"}}
    spec = build_spec("b" * 64, {"Cmd": ["true"], "User": "app"}, host, paths_for(rootfs), "/x")
    resources = spec["linux"]["resources"]
    assert resources["memory"]["limit"] == 64 << 20
    assert resources["cpu"] == {"shares": 512, "period": 100000, "quota": 150000}
    assert resources["pids"] == {"limit": 50}
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]
    assert spec["root"]["readonly"] and spec["process"]["noNewPrivileges"]
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert spec["process"]["capabilities"]["effective"] == []
    parse_spec(spec)


def test_users(rootfs: Path) -> None:
    assert resolve_user(rootfs, "", []) == {"uid": 0, "gid": 0}
    assert resolve_user(rootfs, "1234", []) == {"uid": 1234, "gid": 0}
    assert resolve_user(rootfs, "app:audio", []) == {"uid": 1000, "gid": 29,
                                                     "additionalGids": [10]}
    assert resolve_user(rootfs, "0:0", ["wheel"]) == {"uid": 0, "gid": 0,
                                                      "additionalGids": [10]}
    with pytest.raises(InvalidParameter, match="unable to find user nobody"):
        resolve_user(rootfs, "nobody", [])


def test_no_command_is_refused(rootfs: Path) -> None:
    with pytest.raises(InvalidParameter, match="no command specified"):
        build_spec("c" * 64, {}, {}, paths_for(rootfs), "/x")


def test_user_mounts_validation(tmp_path: Path) -> None:
    from dockyard.engine.mounts import user_mounts

    made = tmp_path / "made"
    mounts = user_mounts({"Binds": [f"{made}:/m:ro,rslave"],
                          "Mounts": [{"Type": "tmpfs", "Target": "/t",
                                      "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o1777}}]},
                         create_missing=True)
    assert made.is_dir()
    assert mounts[0].oci() == {"destination": "/m", "type": "bind", "source": str(made),
                               "options": ["rbind", "rslave", "ro"]}
    assert mounts[1].oci()["options"][-2:] == ["size=1024", "mode=1777"]
    for host_config, message in (
            ({"Binds": ["bad/name:/d"]}, "includes invalid characters"),
            ({"Binds": ["/a:relative"]}, "must be absolute"),
            ({"Binds": ["/a:/d:bogus"]}, "invalid mode: bogus"),
            ({"Binds": ["/a:/d", "/b:/d"]}, "Duplicate mount point: /d"),
            ({"Mounts": [{"Type": "bind", "Source": "/no/such", "Target": "/x"}]},
             "bind source path does not exist"),
            ({"Mounts": [{"Type": "weird", "Target": "/x"}]}, "mount type unknown")):
        with pytest.raises(InvalidParameter, match=message):
            user_mounts(host_config)
