"""Each isolation feature of config.json, checked from inside a real container."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import OCI

_cleanups: list[Path] = []


def request_cleanup(path: Path) -> None:
    _cleanups.append(path)


@pytest.fixture(autouse=True)
def _remove_requested_dirs() -> Iterator[None]:
    yield
    while _cleanups:
        shutil.rmtree(_cleanups.pop(), ignore_errors=True)


def caps_of(status: str, field: str) -> int:
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(f"{field} not in status")


def test_runs_as_pid_1_with_hostname(oci: OCI) -> None:
    result = oci.run(["sh", "-c", "echo $$; hostname; cat /etc/hostname 2>/dev/null; true"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split()
    assert lines[0] == "1"
    assert lines[1] == "dockyard"


def test_exit_code_is_the_containers(oci: OCI) -> None:
    assert oci.run(["sh", "-c", "exit 7"]).returncode == 7
    # PID 1 ignores signals it has no handler for, even SIGKILL from inside: kill a child
    # that exec's into the container's main process instead.
    assert oci.run(["sh", "-c", "sleep 10 & kill -9 $!; wait $!"]).returncode == 137


def test_capabilities_and_no_new_privs(oci: OCI) -> None:
    config = oci.config()
    names = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    config["process"]["capabilities"] = {"bounding": names + ["CAP_CHOWN"], "effective": names,
                                         "permitted": names, "inheritable": names[:2],
                                         "ambient": names}
    result = oci.run(["cat", "/proc/self/status"], config)
    assert result.returncode == 0, result.stderr
    expected = (1 << 29) | (1 << 5) | (1 << 10)
    assert caps_of(result.stdout, "CapBnd") == expected | 1
    for field in ("CapEff", "CapPrm"):
        assert caps_of(result.stdout, field) == expected, field
    # Ambient needs permitted and inheritable: NET_BIND_SERVICE is skipped, as in runc.
    assert caps_of(result.stdout, "CapAmb") == (1 << 29) | (1 << 5)
    assert caps_of(result.stdout, "CapInh") == (1 << 29) | (1 << 5)
    assert "NoNewPrivs:\t1" in result.stdout


def test_user_and_groups(oci: OCI) -> None:
    config = oci.config()
    config["process"]["user"] = {"uid": 1234, "gid": 567, "additionalGids": [10, 20],
                                 "umask": 0o077}
    config["process"]["noNewPrivileges"] = False
    result = oci.run(["sh", "-c", "id -u; id -g; id -G; umask; grep NoNewPrivs /proc/self/status"],
                     config)
    assert result.returncode == 0, result.stderr
    uid, gid, groups, umask, nnp = result.stdout.strip().split("\n")
    assert (uid, gid) == ("1234", "567")
    assert set(groups.split()) == {"567", "10", "20"}
    assert umask == "0077"
    assert nnp.split()[1] == "0"


def test_env_and_cwd(oci: OCI) -> None:
    config = oci.config()
    config["process"]["env"] = ["PATH=/bin", "GREETING=hello world"]
    config["process"]["cwd"] = "/tmp/made/by/runtime"
    result = oci.run(["sh", "-c", 'echo "$GREETING"; pwd'], config)
    assert result.stdout.split("\n")[:2] == ["hello world", "/tmp/made/by/runtime"]


def test_rlimits(oci: OCI) -> None:
    config = oci.config()
    config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                    {"type": "RLIMIT_NPROC", "soft": 77, "hard": 77}]
    result = oci.run(["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u"], config)
    assert result.stdout.split() == ["123", "456", "77"], result.stderr


def test_masked_and_readonly_paths(oci: OCI) -> None:
    result = oci.run(["sh", "-c", "wc -c < /proc/keys; ls /sys/firmware | wc -l; "
                      "echo 1 > /proc/sys/kernel/panic_on_oops && echo wrote || echo refused"])
    assert result.stdout.split() == ["0", "0", "refused"], result.stderr


def test_readonly_root_and_tmpfs_mount(oci: OCI) -> None:
    config = oci.config()
    config["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                             "options": ["size=1m", "mode=1777"]})
    result = oci.run(["sh", "-c", "touch /x 2>/dev/null && echo rw || echo ro; "
                      "touch /scratch/y && echo scratch-ok; stat -c %a /scratch"], config)
    assert result.stdout.split() == ["ro", "scratch-ok", "1777"], result.stderr


def test_bind_mount_readonly(oci: OCI, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "file").write_text("from the host\n")
    config = oci.config()
    config["mounts"].append({"destination": "/host", "type": "bind", "source": str(shared),
                             "options": ["rbind", "ro"]})
    result = oci.run(["sh", "-c", "cat /host/file; touch /host/new 2>/dev/null && echo rw "
                      "|| echo ro"], config)
    assert result.stdout.split("\n")[:2] == ["from the host", "ro"], result.stderr
    assert not (shared / "new").exists()


def test_dev_has_default_devices_and_links(oci: OCI) -> None:
    result = oci.run(["sh", "-c", "ls /dev; readlink /dev/ptmx; echo x > /dev/null && echo ok"])
    names = set(result.stdout.split())
    assert {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "fd",
            "stdin", "stdout", "stderr", "ok", "pts/ptmx"} <= names, result.stdout


def test_linux_devices(oci: OCI) -> None:
    config = oci.config()
    config["linux"]["devices"] = [{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
                                   "fileMode": 0o620, "uid": 0, "gid": 0}]
    config["linux"]["resources"]["devices"] = [{"allow": True, "access": "rwm"}]
    result = oci.run(["sh", "-c", "stat -c '%t %T %a' /dev/mynull"], config)
    assert result.stdout.strip() == "1 3 620", result.stderr


def test_sysctl_and_domainname(oci: OCI) -> None:
    config = oci.config()
    config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    config["domainname"] = "example.test"
    result = oci.run(["sh", "-c", "cat /proc/sys/net/ipv4/ip_forward; "
                      "cat /proc/sys/kernel/domainname"], config)
    assert result.stdout.split() == ["1", "example.test"], result.stderr


def test_network_namespace_has_loopback_up(oci: OCI) -> None:
    result = oci.run(["ip", "-o", "link", "show"])
    assert result.stdout.count("\n") == 1, result.stdout
    assert "lo: <LOOPBACK,UP" in result.stdout, result.stdout + result.stderr


def test_oom_score_adj(oci: OCI) -> None:
    config = oci.config()
    config["process"]["oomScoreAdj"] = 123
    assert oci.run(["cat", "/proc/self/oom_score_adj"], config).stdout.strip() == "123"


def test_seccomp_errno_rule(oci: OCI) -> None:
    config = oci.config()
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 13}],
    }
    result = oci.run(["sh", "-c", "mkdir /tmp/d; echo rc=$?"], config)
    assert "Permission denied" in result.stderr + result.stdout
    assert "rc=1" in result.stdout


def test_user_namespace_maps_ids(oci: OCI, tmp_path: Path) -> None:
    # The mapped root (host uid 100000) must be able to reach and own its rootfs.
    private_root = Path(tempfile.mkdtemp(prefix="dockyard-userns-", dir="/tmp"))
    request_cleanup(private_root)
    private_root.chmod(0o755)
    subprocess.run(["cp", "-a", str(oci.rootfs), str(private_root / "rootfs")], check=True)
    subprocess.run(["chown", "-R", "100000:100000", str(private_root / "rootfs")], check=True)
    config = oci.config()
    config["root"]["path"] = str(private_root / "rootfs")
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    # The shared rootfs is owned by host root, which is unmapped here: use a bind of a dir
    # owned by the mapped root to show the mapping from the host's side too.
    owned = private_root / "owned"
    owned.mkdir()
    os.chown(owned, 100000, 100000)
    config["mounts"].append({"destination": "/owned", "type": "bind", "source": str(owned),
                             "options": ["rbind", "rw"]})
    config["mounts"] = [m for m in config["mounts"] if m["type"] != "sysfs"] + [
        {"destination": "/sys", "type": "bind", "source": "/sys",
         "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}]
    result = oci.run(["sh", "-c", "cat /proc/self/uid_map; id -u; touch /owned/f"], config)
    assert result.returncode == 0, result.stderr
    mapping = result.stdout.split()
    assert mapping[:3] == ["0", "100000", "65536"]
    assert mapping[3] == "0"
    assert (owned / "f").stat().st_uid == 100000


def test_cgroup_limits_are_written(oci: OCI) -> None:
    config = oci.config()
    config["linux"]["resources"].update({
        "memory": {"limit": 64 * 1024 * 1024},
        "pids": {"limit": 42},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    })
    script = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
              "/sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us "
              "2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")
    result = oci.run(["sh", "-c", script], config)
    values = result.stdout.split()
    assert values[:2] == [str(64 * 1024 * 1024), "42"], result.stdout + result.stderr
    if len(values) == 4:
        assert values[2:] == ["512", "50000"]


def test_pids_limit_is_enforced(oci: OCI) -> None:
    config = oci.config()
    config["linux"]["resources"]["pids"] = {"limit": 5}
    result = oci.run(["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; "
                      "echo done"], config, timeout=60)
    assert "Resource temporarily unavailable" in result.stdout + result.stderr or \
        "can't fork" in result.stdout + result.stderr


def test_no_pivot(oci: OCI) -> None:
    config = oci.config(["sh", "-c", "echo $$; ls /"])
    container_id = oci.new_id()
    bundle = oci.bundle(config, container_id)
    result = oci("run", "--no-pivot", "--bundle", str(bundle), container_id)
    assert result.returncode == 0, result.stderr
    assert "bin" in result.stdout.split()


def test_compiled_seccomp_filter_is_cached_and_reused(oci: OCI) -> None:
    config = oci.config()
    config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 1}],
    }
    first = oci.run(["sh", "-c", "mkdir /tmp/x 2>/dev/null; echo rc=$?"], config)
    cache = oci.root / "seccomp@cache"
    assert first.stdout.strip() == "rc=1", first.stderr
    entries = list(cache.iterdir())
    assert len(entries) == 1 and entries[0].stat().st_size % 8 == 0
    second = oci.run(["sh", "-c", "mkdir /tmp/x 2>/dev/null; echo rc=$?"], config)
    assert second.stdout.strip() == "rc=1", second.stderr
    assert list(cache.iterdir()) == entries
    container_id = oci.create(oci.config(["sleep", "30"]) | {"linux": config["linux"]})
    oci("start", container_id, check=True)
    denied = oci("exec", container_id, "sh", "-c", "mkdir /tmp/y 2>/dev/null; echo rc=$?")
    assert denied.stdout.strip() == "rc=1", denied.stderr
