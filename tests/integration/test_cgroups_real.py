"""The cgroup managers on this machine's real cgroups (root): the v1 hierarchies under
/sys/fs/cgroup and the cgroup2 mount at /sys/fs/cgroup/unified. Every cgroup made here is
removed by a finalizer that does not rely on the code under test."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.runtime.cgroups import CGROUP_ROOT, CgroupError
from dockyard.runtime.cgroups.v1 import CgroupV1
from dockyard.runtime.cgroups.v2 import CgroupV2
from tests.conftest import require_root

UNIFIED = "/sys/fs/cgroup/unified"
PREFIX = f"dockyard-test-{uuid.uuid4().hex[:8]}"
MiB = 1 << 20


def read(path: str) -> str:
    return Path(path).read_text().strip()


def remove_cgroup(path: str) -> None:
    """Kills what is left below `path`, thaws it so the kill lands, and removes it."""
    if not os.path.isdir(path):
        return
    for current, _, _ in os.walk(path, topdown=False):
        for pid in read(os.path.join(current, "cgroup.procs")).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        for name, value in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
            if os.path.exists(os.path.join(current, name)):
                Path(current, name).write_text(value)
        deadline = time.monotonic() + 5
        while os.path.isdir(current):
            try:
                os.rmdir(current)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    yield
    left = glob.glob(f"/sys/fs/cgroup/*/{PREFIX}*")
    assert not left, f"cgroups left behind: {left}"


@pytest.fixture(autouse=True)
def root() -> None:
    require_root()


class Family:
    """A shell moved into the cgroup before it forks two sleeps, so all three belong."""

    def __init__(self) -> None:
        self.shell = subprocess.Popen(["sh", "-c", "read go; sleep 300 & sleep 300 & wait"],
                                      stdin=subprocess.PIPE)

    def start_children(self) -> None:
        assert self.shell.stdin is not None
        self.shell.stdin.write(b"go\n")
        self.shell.stdin.close()

    def close(self) -> None:
        if self.shell.poll() is None:
            self.shell.kill()
        self.shell.wait(10)


@pytest.fixture
def family() -> Iterator[Family]:
    child = Family()
    yield child
    child.close()


def wait_for_pids(cg: CgroupV1 | CgroupV2, count: int) -> list[int]:
    deadline = time.monotonic() + 5
    while len(pids := cg.pids()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return pids


@pytest.fixture
def v1() -> Iterator[CgroupV1]:
    # Two levels, so cpuset.cpus/mems must be copied into the parent and the leaf.
    cg = CgroupV1(CGROUP_ROOT, f"/{PREFIX}-v1/ctr")
    yield cg
    for path in sorted({os.path.dirname(p) for p in cg.paths().values()}):
        remove_cgroup(path)


@pytest.fixture
def v2() -> Iterator[CgroupV2]:
    control = os.path.join(UNIFIED, "cgroup.subtree_control")
    before = set(read(control).split())
    cg = CgroupV2(UNIFIED, f"/{PREFIX}-v2/ctr")
    yield cg
    remove_cgroup(os.path.dirname(cg.path))
    # create() delegates what the root offers (hugetlb on this host); take that back.
    for controller in set(read(control).split()) - before:
        Path(control).write_text("-" + controller)


def test_v1_lifecycle(v1: CgroupV1, family: Family) -> None:
    v1.create()
    paths = v1.paths()
    assert all(os.path.isdir(path) for path in paths.values())
    root_cpus = read(f"{CGROUP_ROOT}/cpuset/cpuset.cpus")
    assert read(os.path.join(paths["cpuset"], "cpuset.cpus")) == root_cpus
    assert read(os.path.join(os.path.dirname(paths["cpuset"]), "cpuset.mems"))

    pid = family.shell.pid
    v1.add_process(pid)
    family.start_children()
    for line in read(f"/proc/{pid}/cgroup").splitlines():
        if not line.startswith("0::"):
            assert line.endswith(f"/{PREFIX}-v1/ctr"), line
    pids = wait_for_pids(v1, 3)
    assert pid in pids and len(pids) == 3

    memsw = os.path.exists(os.path.join(paths["memory"], "memory.memsw.limit_in_bytes"))
    memory = {"limit": 64 * MiB} | ({"swap": 128 * MiB} if memsw else {})
    v1.apply_resources({
        "memory": memory, "pids": {"limit": 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})
    assert read(os.path.join(paths["memory"], "memory.limit_in_bytes")) == str(64 * MiB)
    if memsw:
        assert read(os.path.join(paths["memory"], "memory.memsw.limit_in_bytes")) == \
            str(128 * MiB)
    assert read(os.path.join(paths["pids"], "pids.max")) == "20"
    assert read(os.path.join(paths["cpu"], "cpu.shares")) == "512"
    assert read(os.path.join(paths["cpu"], "cpu.cfs_quota_us")) == "50000"
    assert read(os.path.join(paths["cpu"], "cpu.cfs_period_us")) == "100000"
    assert read(os.path.join(paths["devices"], "devices.list")) == "c 1:3 rwm"

    stats = v1.stats()
    assert stats["memory"]["limit"] == 64 * MiB
    assert stats["pids"] == {"current": 3, "limit": 20}
    assert stats["cpu"]["usage_total_ns"] > 0

    v1.freeze()
    assert read(os.path.join(paths["freezer"], "freezer.state")) == "FROZEN"
    assert v1.is_frozen()
    v1.thaw()
    assert read(os.path.join(paths["freezer"], "freezer.state")) == "THAWED"
    assert not v1.is_frozen()

    v1.destroy()
    assert family.shell.wait(5) == -signal.SIGKILL
    assert not any(os.path.exists(path) for path in paths.values())


def test_v1_destroy_kills_a_frozen_cgroup(v1: CgroupV1, family: Family) -> None:
    v1.create()
    v1.add_process(family.shell.pid)
    family.start_children()
    wait_for_pids(v1, 3)
    v1.freeze()
    v1.destroy()
    assert family.shell.wait(5) == -signal.SIGKILL
    assert not os.path.exists(v1.paths()["freezer"])


def test_v1_kernel_refusals_name_the_field(v1: CgroupV1) -> None:
    v1.create()
    with pytest.raises(CgroupError, match=r"^linux.resources.cpu.cpus: writing 4096 to "
                       r"cpuset.cpus: .*\(4096 not in the parent's"):
        v1.apply_resources({"cpu": {"cpus": "4096"}})
    with pytest.raises(CgroupError, match="maximum allowed cpu-shares is 262144"):
        v1.apply_resources({"cpu": {"shares": 1 << 20}})
    v1.destroy()


def test_v2_lifecycle(v2: CgroupV2, family: Family) -> None:
    v2.create()
    assert os.path.isdir(v2.path)
    pid = family.shell.pid
    v2.add_process(pid)
    family.start_children()
    assert f"0::/{PREFIX}-v2/ctr" in read(f"/proc/{pid}/cgroup").splitlines()
    pids = wait_for_pids(v2, 3)
    assert pid in pids and len(pids) == 3

    # On this hybrid host memory, cpu, pids and io are bound to v1 hierarchies, so the
    # unified tree cannot offer them and memory.max & co. do not exist: no resource writes
    # here except device rules (accepted, never written on v2) and hugetlb when the root
    # offers it (it is not mounted on v1 here).
    v2.apply_resources({"devices": [{"allow": False, "access": "rwm"}]})
    hugetlb = os.path.join(v2.path, "hugetlb.2MB.max")
    if os.path.exists(hugetlb):
        v2.apply_resources({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]})
        assert read(hugetlb) == str(4 * MiB)

    v2.freeze()
    assert "frozen 1" in read(os.path.join(v2.path, "cgroup.events")).splitlines()
    assert v2.is_frozen()
    v2.thaw()
    assert "frozen 0" in read(os.path.join(v2.path, "cgroup.events")).splitlines()
    assert not v2.is_frozen()

    v2.destroy()
    assert family.shell.wait(5) == -signal.SIGKILL
    assert not os.path.exists(v2.path)


def test_v2_destroy_kills_a_frozen_cgroup(v2: CgroupV2, family: Family) -> None:
    v2.create()
    v2.add_process(family.shell.pid)
    family.start_children()
    wait_for_pids(v2, 3)
    v2.freeze()
    v2.destroy()
    assert family.shell.wait(5) == -signal.SIGKILL
    assert not os.path.exists(v2.path)
