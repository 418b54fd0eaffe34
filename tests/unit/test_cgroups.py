"""Cgroup managers against fake cgroup trees in tmp_path: what each OCI resource writes, in
which order, and how errors name the field. No root, no real cgroup."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dockyard.runtime import cgroups
from dockyard.runtime.cgroups import CgroupError, _common, open_cgroup
from dockyard.runtime.cgroups._common import parse_cpu_list, resolve_relative_path
from dockyard.runtime.cgroups.v1 import CgroupV1, device_rule, discover_hierarchies
from dockyard.runtime.cgroups.v2 import (
    CgroupV2,
    blkio_to_io_weight,
    shares_to_weight,
    swap_max,
)

MOUNTINFO = """\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 24 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 24 0:40 / /mnt/other\\040cgroup rw - cgroup cgroup rw,pids
51 24 0:41 / /srv/my\\040cg2 rw - cgroup2 cgroup2 rw
"""

SELF_CGROUP = """\
12:pids:/
4:memory:/docker/abc/sub
3:cpu,cpuacct:/user.slice
1:name=systemd:/init.scope
0::/session-3.scope
"""


class Recorder:
    """Replaces _common.write_file: writes, then keeps (file name, value) in order."""

    def __init__(self, real: Callable[[str, str], None]) -> None:
        self.real = real
        self.writes: list[tuple[str, str]] = []
        self.fail: dict[tuple[str, str] | str, int] = {}  # (name, value) or name -> errno

    def __call__(self, path: str, value: str) -> None:
        name = Path(path).name
        code = self.fail.pop((name, value), None) or self.fail.get(name)
        if code:
            raise OSError(code, "fake")
        self.real(path, value)
        self.writes.append((name, value))

    def names(self) -> list[str]:
        return [name for name, _ in self.writes]


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder(_common.write_file)
    monkeypatch.setattr(_common, "write_file", rec)
    return rec


@pytest.fixture
def proc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "read_mountinfo", lambda: MOUNTINFO)
    monkeypatch.setattr(_common, "read_self_cgroup", lambda: SELF_CGROUP)


def make_files(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_text(content)


V1_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712",
               "memory.memsw.limit_in_bytes": "9223372036854771712",
               "memory.soft_limit_in_bytes": "9223372036854771712", "memory.swappiness": "60",
               "memory.oom_control": "oom_kill_disable 0", "memory.usage_in_bytes": "4096",
               "memory.max_usage_in_bytes": "8192", "memory.stat": "cache 1\nrss 2\n"},
    "cpu": {"cpu.shares": "1024", "cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000",
            "cpu.cfs_burst_us": "0", "cpu.rt_period_us": "1000000", "cpu.rt_runtime_us": "0",
            "cpu.idle": "0", "cpu.stat": "nr_periods 5\nnr_throttled 2\nthrottled_time 300\n"},
    "cpuacct": {"cpuacct.usage": "1234", "cpuacct.usage_percpu": "1000 234 "},
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "pids": {"pids.max": "max", "pids.current": "3"},
    "blkio": {"blkio.weight": "500", "blkio.weight_device": "", "blkio.leaf_weight": "",
              "blkio.leaf_weight_device": "", "blkio.throttle.read_bps_device": "",
              "blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "",
              "blkio.throttle.write_iops_device": ""},
    "devices": {"devices.allow": "", "devices.deny": ""},
    "freezer": {"freezer.state": "THAWED", "freezer.self_freezing": "0"},
    "hugetlb": {"hugetlb.2MB.limit_in_bytes": "", "hugetlb.2MB.rsvd.limit_in_bytes": ""},
    "net_cls": {"net_cls.classid": "0"},
}


@pytest.fixture
def v1_tree(tmp_path: Path) -> Callable[..., CgroupV1]:
    """A v1 manager for /ctr over per-hierarchy fake trees (cpu and cpuacct comounted)."""

    def build(skip: tuple[str, ...] = (), drop_files: tuple[str, ...] = ()) -> CgroupV1:
        hierarchies = {}
        for name, files in V1_FILES.items():
            if name in skip:
                continue
            mount = tmp_path / ("cpu,cpuacct" if name in ("cpu", "cpuacct") else name)
            make_files(mount, {"cgroup.procs": "1\n"})
            make_files(mount / "ctr", {k: v for k, v in files.items() if k not in drop_files})
            (mount / "ctr" / "cgroup.procs").touch()
            hierarchies[name] = str(mount)
        if "cpuset" not in skip:
            make_files(tmp_path / "cpuset", {"cpuset.cpus": "0-3", "cpuset.mems": "0"})
        return CgroupV1(str(tmp_path), "/ctr", hierarchies)

    return build


V2_FILES = {
    "cgroup.procs": "", "cgroup.freeze": "0", "cgroup.events": "populated 0\nfrozen 0\n",
    "memory.max": "max", "memory.low": "0", "memory.swap.max": "max", "memory.current": "4096",
    "memory.stat": "anon 10\nfile 20\n", "cpu.weight": "100", "cpu.max": "max 100000",
    "cpu.max.burst": "0", "cpu.idle": "0", "cpuset.cpus": "", "cpuset.mems": "",
    "pids.max": "max", "pids.current": "2", "io.weight": "default 100", "io.max": "",
    "hugetlb.2MB.max": "max", "rdma.max": "", "memory.high": "max",
    "cpu.stat": "usage_usec 5\nnr_periods 7\nnr_throttled 1\nthrottled_usec 2\n",
}


@pytest.fixture
def v2_tree(tmp_path: Path) -> Callable[..., CgroupV2]:
    def build(drop_files: tuple[str, ...] = (), extra: dict[str, str] | None = None) -> CgroupV2:
        files = {k: v for k, v in V2_FILES.items() if k not in drop_files}
        make_files(tmp_path / "ctr", files | (extra or {}))
        make_files(tmp_path, {"cpuset.cpus.effective": "0-1", "cpuset.mems.effective": "0"})
        return CgroupV2(str(tmp_path), "/ctr")

    return build


# -- paths ------------------------------------------------------------------------------


def test_empty_path_is_slash_id_as_in_runc() -> None:
    assert resolve_relative_path("", "abc", "/sys/fs/cgroup") == "/abc"


def test_absolute_path_is_cleaned_and_kept() -> None:
    assert resolve_relative_path("/docker//abc/./", "x", "/sys/fs/cgroup") == "/docker/abc"


@pytest.mark.parametrize("path", ["/a/../b", "..", "a/.."])
def test_dot_dot_is_refused(path: str) -> None:
    with pytest.raises(CgroupError, match=r"linux.cgroupsPath: .* must not contain '\.\.'"):
        resolve_relative_path(path, "x", "/sys/fs/cgroup")


@pytest.mark.parametrize("path", ["/", "//", "/./"])
def test_root_cgroup_is_refused(path: str) -> None:
    with pytest.raises(CgroupError, match="root cgroup"):
        resolve_relative_path(path, "x", "/sys/fs/cgroup")


def test_systemd_path_is_refused() -> None:
    with pytest.raises(CgroupError, match="systemd cgroup paths are not supported"):
        resolve_relative_path("system.slice:docker:abc", "abc", "/sys/fs/cgroup")


def test_relative_path_on_v2_goes_below_own_cgroup(proc: None) -> None:
    got = resolve_relative_path("foo/bar", "x", "/sys/fs/cgroup/unified")
    assert got == "/session-3.scope/foo/bar"


def test_relative_path_on_v1_is_left_to_each_hierarchy(proc: None) -> None:
    assert resolve_relative_path("./foo//bar", "x", "/sys/fs/cgroup") == "foo/bar"


def test_v1_relative_path_is_joined_per_hierarchy(proc: None) -> None:
    cg = CgroupV1("/sys/fs/cgroup", "foo")
    paths = cg.paths()
    assert paths["cpu"] == paths["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/user.slice/foo"
    # memory is mounted from /docker/abc: the own cgroup /docker/abc/sub is /sub in it.
    assert paths["memory"] == "/sys/fs/cgroup/memory/sub/foo"
    assert paths["name=systemd"] == "/sys/fs/cgroup/systemd/init.scope/foo"
    assert paths["cpuset"] == "/sys/fs/cgroup/cpuset/foo"  # no line: the root


def test_v1_absolute_path_is_below_each_mount(proc: None) -> None:
    cg = CgroupV1("/sys/fs/cgroup", "/docker/abc")
    assert cg.paths()["memory"] == "/sys/fs/cgroup/memory/docker/abc"


def test_discovery_keeps_v1_mounts_below_root_only(proc: None) -> None:
    found = discover_hierarchies("/sys/fs/cgroup")
    assert sorted(found) == ["cpu", "cpuacct", "cpuset", "memory", "name=systemd"]
    assert found["cpu"].mountpoint == found["cpuacct"].mountpoint
    assert discover_hierarchies("/mnt")["pids"].mountpoint == "/mnt/other cgroup"


def test_is_cgroup2_mount(proc: None) -> None:
    assert _common.is_cgroup2_mount("/sys/fs/cgroup/unified/")
    assert _common.is_cgroup2_mount("/srv/my cg2")
    assert not _common.is_cgroup2_mount("/sys/fs/cgroup")
    assert not _common.is_cgroup2_mount("/nowhere")


def test_open_cgroup_picks_the_version(proc: None) -> None:
    v2 = open_cgroup("/docker/abc", "abc", "/sys/fs/cgroup/unified")
    assert v2.version == 2 and v2.paths() == {"": "/sys/fs/cgroup/unified/docker/abc"}
    v1 = open_cgroup("", "abc")
    assert v1.version == 1 and v1.paths()["cpuset"] == "/sys/fs/cgroup/cpuset/abc"
    assert cgroups.CGROUP_ROOT == "/sys/fs/cgroup"


def test_parse_cpu_list() -> None:
    assert parse_cpu_list("0-3,5,7-8\n") == [0, 1, 2, 3, 5, 7, 8]
    assert parse_cpu_list("") == []
    with pytest.raises(ValueError):
        parse_cpu_list("3-1")


# -- v1 -----------------------------------------------------------------------------------


def test_v1_create_copies_cpuset_from_parent(v1_tree: Callable[..., CgroupV1],
                                             tmp_path: Path) -> None:
    v1_tree().create()
    assert (tmp_path / "cpuset/ctr/cpuset.cpus").read_text() == "0-3"
    assert (tmp_path / "cpuset/ctr/cpuset.mems").read_text() == "0"


def test_v1_add_process_writes_each_hierarchy_once(v1_tree: Callable[..., CgroupV1],
                                                   recorder: Recorder) -> None:
    v1_tree().add_process(42)
    assert recorder.writes.count(("cgroup.procs", "42")) == len(V1_FILES) - 1  # cpu,cpuacct


def test_v1_memory(v1_tree: Callable[..., CgroupV1], recorder: Recorder) -> None:
    v1_tree().apply_resources({"memory": {
        "limit": 100, "swap": 300, "reservation": 50, "swappiness": 0,
        "disableOOMKiller": True, "kernel": 1}})
    # The current limit (unlimited) is above the new memory+swap: limit first, then memsw.
    assert recorder.writes == [
        ("memory.limit_in_bytes", "100"), ("memory.memsw.limit_in_bytes", "300"),
        ("memory.soft_limit_in_bytes", "50"), ("memory.oom_control", "1"),
        ("memory.swappiness", "0")]


def test_v1_memory_growing_writes_swap_first(v1_tree: Callable[..., CgroupV1],
                                             recorder: Recorder, tmp_path: Path) -> None:
    cg = v1_tree()
    (tmp_path / "memory/ctr/memory.limit_in_bytes").write_text("100")
    cg.apply_resources({"memory": {"limit": 200, "swap": 400}})
    assert recorder.names() == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_v1_unlimited_memory_unlimits_swap(v1_tree: Callable[..., CgroupV1],
                                           recorder: Recorder) -> None:
    v1_tree().apply_resources({"memory": {"limit": -1}})
    assert recorder.writes == [("memory.memsw.limit_in_bytes", "-1"),
                               ("memory.limit_in_bytes", "-1")]


def test_v1_swap_without_swap_accounting_fails(v1_tree: Callable[..., CgroupV1]) -> None:
    cg = v1_tree(drop_files=("memory.memsw.limit_in_bytes",))
    with pytest.raises(CgroupError, match=r"^linux.resources.memory.swap: writing 300 to "
                       r"memory.memsw.limit_in_bytes: .*swapaccount=1"):
        cg.apply_resources({"memory": {"limit": 100, "swap": 300}})
    cg.apply_resources({"memory": {"limit": 100}})  # no swap asked: fine


def test_v1_error_names_field_and_file(v1_tree: Callable[..., CgroupV1],
                                       recorder: Recorder) -> None:
    recorder.fail["memory.limit_in_bytes"] = errno.EBUSY
    with pytest.raises(CgroupError) as info:
        v1_tree().apply_resources({"memory": {"limit": 1000}})
    assert str(info.value) == ("linux.resources.memory.limit: writing 1000 to "
                               "memory.limit_in_bytes: Device or resource busy")


def test_v1_swappiness_range(v1_tree: Callable[..., CgroupV1]) -> None:
    with pytest.raises(CgroupError, match="swappiness: must be 0 to 100"):
        v1_tree().apply_resources({"memory": {"swappiness": 101}})


def test_v1_cpu(v1_tree: Callable[..., CgroupV1], recorder: Recorder) -> None:
    v1_tree().apply_resources({"cpu": {
        "shares": 512, "quota": 50000, "period": 200000, "burst": 1000, "idle": 0,
        "realtimeRuntime": 950, "realtimePeriod": 1000, "cpus": "0-1", "mems": "0"}})
    assert recorder.writes == [
        ("cpuset.cpus", "0-1"), ("cpuset.mems", "0"), ("cpu.shares", "512"),
        ("cpu.cfs_period_us", "200000"), ("cpu.cfs_burst_us", "1000"),
        ("cpu.cfs_quota_us", "50000"), ("cpu.idle", "0"), ("cpu.rt_period_us", "1000"),
        ("cpu.rt_runtime_us", "950")]


def test_v1_cpu_period_refused_is_retried_after_quota(v1_tree: Callable[..., CgroupV1],
                                                      recorder: Recorder) -> None:
    recorder.fail[("cpu.cfs_period_us", "10000")] = errno.EINVAL
    v1_tree().apply_resources({"cpu": {"quota": 5000, "period": 10000}})
    assert recorder.writes == [("cpu.cfs_quota_us", "5000"), ("cpu.cfs_period_us", "10000")]


def test_v1_cpu_period_refused_without_quota_fails(v1_tree: Callable[..., CgroupV1],
                                                   recorder: Recorder) -> None:
    recorder.fail["cpu.cfs_period_us"] = errno.EINVAL
    with pytest.raises(CgroupError, match="^linux.resources.cpu.period: writing 10000"):
        v1_tree().apply_resources({"cpu": {"period": 10000}})


def test_v1_cpu_shares_clamped_by_kernel_is_an_error(v1_tree: Callable[..., CgroupV1],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    real = _common.write_file

    def clamp(path: str, value: str) -> None:
        real(path, str(min(int(value), 262144)) if path.endswith("cpu.shares") else value)

    monkeypatch.setattr(_common, "write_file", clamp)
    with pytest.raises(CgroupError, match="maximum allowed cpu-shares is 262144"):
        v1_tree().apply_resources({"cpu": {"shares": 1 << 20}})


def test_v1_cpuset_error_says_what_the_parent_lacks(v1_tree: Callable[..., CgroupV1],
                                                    recorder: Recorder) -> None:
    recorder.fail["cpuset.cpus"] = errno.EINVAL
    with pytest.raises(CgroupError, match=r"cpus: writing 2-5 to cpuset.cpus: Invalid argument "
                       r"\(4,5 not in the parent's 0-3\)"):
        v1_tree().apply_resources({"cpu": {"cpus": "2-5"}})


@pytest.mark.parametrize(("limit", "written"), [(-1, "max"), (0, "max"), (20, "20")])
def test_v1_pids(v1_tree: Callable[..., CgroupV1], recorder: Recorder, limit: int,
                 written: str) -> None:
    v1_tree().apply_resources({"pids": {"limit": limit}})
    assert recorder.writes == [("pids.max", written)]


def test_v1_block_io(v1_tree: Callable[..., CgroupV1], recorder: Recorder) -> None:
    v1_tree().apply_resources({"blockIO": {
        "weight": 300, "leafWeight": 20,
        "weightDevice": [{"major": 8, "minor": 0, "weight": 600, "leafWeight": 30}],
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}]}})
    assert recorder.writes == [
        ("blkio.weight", "300"), ("blkio.leaf_weight", "20"),
        ("blkio.weight_device", "8:0 600"), ("blkio.leaf_weight_device", "8:0 30"),
        ("blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio.throttle.write_iops_device", "8:16 100")]


def test_v1_block_io_weight_falls_back_to_bfq(v1_tree: Callable[..., CgroupV1],
                                              recorder: Recorder, tmp_path: Path) -> None:
    cg = v1_tree(drop_files=("blkio.weight",))
    make_files(tmp_path / "blkio/ctr", {"blkio.bfq.weight": "100"})
    cg.apply_resources({"blockIO": {"weight": 300}})
    assert recorder.writes == [("blkio.bfq.weight", "300")]


def test_v1_devices_in_order(v1_tree: Callable[..., CgroupV1], recorder: Recorder) -> None:
    v1_tree().apply_resources({"devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": True, "type": "c", "major": 136, "minor": -1, "access": "rw"},
        {"allow": False, "type": "b", "major": 8, "minor": 0}]})
    assert recorder.writes == [("devices.deny", "a *:* rwm"), ("devices.allow", "c 1:3 rwm"),
                               ("devices.allow", "c 136:* rw"), ("devices.deny", "b 8:0 rwm")]


def test_device_rule_defaults() -> None:
    assert device_rule({"allow": True}) == "a *:* rwm"


def test_v1_hugepages_network(v1_tree: Callable[..., CgroupV1], recorder: Recorder) -> None:
    v1_tree().apply_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
                               "network": {"classID": 1048577}})
    assert recorder.writes == [("hugetlb.2MB.limit_in_bytes", "4194304"),
                               ("hugetlb.2MB.rsvd.limit_in_bytes", "4194304"),
                               ("net_cls.classid", "1048577")]


def test_v1_missing_hierarchy_names_the_field(v1_tree: Callable[..., CgroupV1]) -> None:
    cg = v1_tree(skip=("pids",))
    with pytest.raises(CgroupError, match="^linux.resources.pids.limit: the pids cgroup "
                       "hierarchy is not mounted"):
        cg.apply_resources({"pids": {"limit": 5}})
    cg.apply_resources({"memory": {}, "pids": {}})  # nothing asked of it: fine


def test_v1_refuses_unified(v1_tree: Callable[..., CgroupV1]) -> None:
    with pytest.raises(CgroupError, match="^linux.resources.unified"):
        v1_tree().apply_resources({"unified": {"memory.high": "100"}})


def test_v1_pids_are_recursive_and_deduplicated(v1_tree: Callable[..., CgroupV1],
                                                tmp_path: Path) -> None:
    cg = v1_tree()
    (tmp_path / "pids/ctr/cgroup.procs").write_text("7\n3\n")
    make_files(tmp_path / "pids/ctr/child", {"cgroup.procs": "3\n9\n"})
    assert cg.pids() == [3, 7, 9]


def test_v1_freeze_and_thaw(v1_tree: Callable[..., CgroupV1], tmp_path: Path) -> None:
    cg = v1_tree()
    cg.freeze()
    assert (tmp_path / "freezer/ctr/freezer.state").read_text() == "FROZEN"
    (tmp_path / "freezer/ctr/freezer.self_freezing").write_text("1")
    assert cg.is_frozen()
    cg.thaw()
    assert not cg.is_frozen()


def test_v1_frozen_by_parent_only_is_not_frozen(v1_tree: Callable[..., CgroupV1],
                                                tmp_path: Path) -> None:
    cg = v1_tree()
    (tmp_path / "freezer/ctr/freezer.state").write_text("FROZEN")
    assert not cg.is_frozen()


def test_v1_stats(v1_tree: Callable[..., CgroupV1], tmp_path: Path) -> None:
    stats = v1_tree().stats()
    assert stats["memory"] == {"usage": 4096, "limit": None, "max_usage": 8192,
                               "stats": {"cache": 1, "rss": 2}}
    assert stats["cpu"] == {"usage_total_ns": 1234, "usage_per_cpu_ns": [1000, 234],
                            "throttling": {"periods": 5, "throttled_periods": 2,
                                           "throttled_time_ns": 300}}
    assert stats["pids"] == {"current": 3, "limit": None}


def test_v1_stats_tolerate_missing_files(v1_tree: Callable[..., CgroupV1]) -> None:
    stats = v1_tree(skip=("memory", "pids", "cpuacct")).stats()
    assert stats["memory"]["usage"] == 0 and stats["memory"]["limit"] is None
    assert stats["cpu"]["usage_per_cpu_ns"] == [] and stats["pids"]["limit"] is None


# -- v2 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("shares", "weight"), [(2, 1), (1024, 39), (262144, 10000),
                                                (1, 1), (1 << 20, 10000)])
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


@pytest.mark.parametrize(("blkio", "io"), [(10, 1), (500, 4950), (1000, 10000)])
def test_blkio_to_io_weight(blkio: int, io: int) -> None:
    assert blkio_to_io_weight(blkio) == io


@pytest.mark.parametrize(("limit", "swap", "expected"), [
    (100, 300, "200"), (100, 100, "0"), (100, -1, "max"), (-1, 0, "max"), (100, 0, None),
    (0, 0, None)])
def test_swap_arithmetic(limit: int, swap: int, expected: str | None) -> None:
    assert swap_max(limit, swap) == expected


@pytest.mark.parametrize(("limit", "swap", "message"), [
    (200, 100, "must be at least the memory limit"), (0, 100, "needs a memory limit"),
    (-1, 100, "needs a memory limit")])
def test_swap_arithmetic_errors(limit: int, swap: int, message: str) -> None:
    with pytest.raises(CgroupError, match=f"^linux.resources.memory.swap: .*{message}"):
        swap_max(limit, swap)


def test_v2_memory(v2_tree: Callable[..., CgroupV2], recorder: Recorder) -> None:
    v2_tree().apply_resources({"memory": {"limit": 100, "swap": 300, "reservation": 50,
                                          "swappiness": 10, "disableOOMKiller": True}})
    assert recorder.writes == [("memory.swap.max", "200"), ("memory.max", "100"),
                               ("memory.low", "50")]


def test_v2_no_swap_file_is_fine_unless_a_limit_is_asked(v2_tree: Callable[..., CgroupV2],
                                                         recorder: Recorder) -> None:
    cg = v2_tree(drop_files=("memory.swap.max",))
    cg.apply_resources({"memory": {"limit": -1}})
    assert recorder.writes == [("memory.max", "max")]
    with pytest.raises(CgroupError, match="^linux.resources.memory.swap: writing 200 to "
                       "memory.swap.max"):
        cg.apply_resources({"memory": {"limit": 100, "swap": 300}})


def test_v2_cpu(v2_tree: Callable[..., CgroupV2], recorder: Recorder) -> None:
    v2_tree().apply_resources({"cpu": {"shares": 1024, "quota": 50000, "period": 100000,
                                       "burst": 1000, "idle": 1, "cpus": "1", "mems": "0"}})
    assert recorder.writes == [("cpu.weight", "39"), ("cpu.idle", "1"),
                               ("cpu.max.burst", "1000"), ("cpu.max", "50000 100000"),
                               ("cpuset.cpus", "1"), ("cpuset.mems", "0")]


@pytest.mark.parametrize(("cpu", "written"), [
    ({"quota": -1, "period": 100000}, "max 100000"), ({"period": 50000}, "max 50000"),
    ({"quota": 20000}, "20000")])
def test_v2_cpu_max(v2_tree: Callable[..., CgroupV2], recorder: Recorder,
                    cpu: dict[str, Any], written: str) -> None:
    v2_tree().apply_resources({"cpu": cpu})
    assert recorder.writes == [("cpu.max", written)]


def test_v2_cpuset_error_uses_effective_parent(v2_tree: Callable[..., CgroupV2],
                                               recorder: Recorder) -> None:
    recorder.fail["cpuset.cpus"] = errno.EINVAL
    with pytest.raises(CgroupError, match=r"\(3 not in the parent's 0-1\)"):
        v2_tree().apply_resources({"cpu": {"cpus": "1,3"}})


def test_v2_realtime_is_refused(v2_tree: Callable[..., CgroupV2]) -> None:
    with pytest.raises(CgroupError, match="^linux.resources.cpu.realtimeRuntime"):
        v2_tree().apply_resources({"cpu": {"realtimeRuntime": 1000}})


def test_v2_pids_io_hugepages_rdma(v2_tree: Callable[..., CgroupV2],
                                   recorder: Recorder) -> None:
    v2_tree().apply_resources({
        "pids": {"limit": -1},
        "blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}],
        "rdma": {"mlx5_1": {"hcaHandles": 3}}})
    assert recorder.writes == [
        ("pids.max", "max"), ("io.weight", "4950"), ("io.weight", "8:0 1"),
        ("io.max", "8:0 rbps=1000"), ("io.max", "8:0 wiops=10"),
        ("hugetlb.2MB.max", "2097152"), ("rdma.max", "mlx5_1 hca_handle=3 hca_object=max")]


def test_v2_io_prefers_bfq(v2_tree: Callable[..., CgroupV2], recorder: Recorder) -> None:
    v2_tree(extra={"io.bfq.weight": "default 100"}).apply_resources(
        {"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 10}]}})
    assert recorder.writes == [("io.bfq.weight", "500"), ("io.bfq.weight", "8:0 10")]


def test_v2_unified_is_written_verbatim_last(v2_tree: Callable[..., CgroupV2],
                                             recorder: Recorder) -> None:
    v2_tree().apply_resources({"pids": {"limit": 5}, "unified": {
        "memory.high": "1000", "pids.max": "7", "io.max": "8:0 rbps=1\n8:16 wbps=2\n"}})
    assert recorder.writes == [("pids.max", "5"), ("memory.high", "1000"), ("pids.max", "7"),
                               ("io.max", "8:0 rbps=1"), ("io.max", "8:16 wbps=2")]


@pytest.mark.parametrize("key", ["../cgroup.procs", "a/b", ".."])
def test_v2_unified_key_must_be_a_file_name(v2_tree: Callable[..., CgroupV2], key: str) -> None:
    with pytest.raises(CgroupError, match="must be the name of a file"):
        v2_tree().apply_resources({"unified": {key: "1"}})


def test_v2_missing_controller_is_named(v2_tree: Callable[..., CgroupV2]) -> None:
    with pytest.raises(CgroupError, match=r"^linux.resources.memory.limit: writing 100 to "
                       r"memory.max: No such file or directory \(the memory controller is "
                       r"not enabled"):
        v2_tree(drop_files=("memory.max",)).apply_resources({"memory": {"limit": 100}})


def test_v2_devices_are_accepted_without_writes(v2_tree: Callable[..., CgroupV2],
                                                recorder: Recorder) -> None:
    v2_tree().apply_resources({"devices": [{"allow": False, "access": "rwm"}],
                               "network": {"classID": 1}})
    assert recorder.writes == []


def test_v2_create_enables_offered_controllers_in_ancestors(tmp_path: Path,
                                                            recorder: Recorder) -> None:
    make_files(tmp_path, {"cgroup.controllers": "cpu io memory pids misc",
                          "cgroup.subtree_control": "memory"})
    make_files(tmp_path / "a", {"cgroup.controllers": "memory pids",
                                "cgroup.subtree_control": ""})
    (tmp_path / "a/b").mkdir()  # the leaf: nothing is enabled below it
    CgroupV2(str(tmp_path), "/a/b").create()
    assert recorder.writes == [("cgroup.subtree_control", "+cpu +io +pids"),
                               ("cgroup.subtree_control", "+memory +pids")]


def test_v2_create_takes_controllers_one_by_one(tmp_path: Path, recorder: Recorder) -> None:
    make_files(tmp_path, {"cgroup.controllers": "cpu memory", "cgroup.subtree_control": ""})
    recorder.fail[("cgroup.subtree_control", "+cpu +memory")] = errno.EBUSY
    recorder.fail[("cgroup.subtree_control", "+cpu")] = errno.EBUSY
    CgroupV2(str(tmp_path), "ctr").create()
    assert recorder.writes == [("cgroup.subtree_control", "+memory")]
    assert (tmp_path / "ctr").is_dir()


def test_v2_freeze_waits_for_events(v2_tree: Callable[..., CgroupV2], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real = _common.write_file

    def kernel(path: str, value: str) -> None:
        real(path, value)
        if path.endswith("cgroup.freeze"):
            real(str(Path(path).parent / "cgroup.events"), f"populated 1\nfrozen {value}\n")

    cg = v2_tree()
    monkeypatch.setattr(_common, "write_file", kernel)
    cg.freeze()
    assert cg.is_frozen()
    cg.thaw()
    assert not cg.is_frozen()


def test_v2_freeze_times_out(v2_tree: Callable[..., CgroupV2],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dockyard.runtime.cgroups.v2.FREEZE_TIMEOUT", 0.05)
    with pytest.raises(CgroupError, match="does not say frozen 1"):
        v2_tree().freeze()


def test_v2_stats(v2_tree: Callable[..., CgroupV2]) -> None:
    assert v2_tree().stats() == {
        "memory": {"usage": 4096, "limit": None, "max_usage": 0,
                   "stats": {"anon": 10, "file": 20}},
        "cpu": {"usage_total_ns": 5000, "usage_per_cpu_ns": [],
                "throttling": {"periods": 7, "throttled_periods": 1, "throttled_time_ns": 2000}},
        "pids": {"current": 2, "limit": None}}


def test_v2_refuses_root() -> None:
    with pytest.raises(CgroupError, match="root cgroup"):
        CgroupV2("/sys/fs/cgroup", "/")
