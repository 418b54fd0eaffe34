"""cgroup v1: one directory per mounted hierarchy (memory, cpu, cpuset, ...), written in the
order and with the checks of runc's fs driver."""

import errno
import os

from . import CgroupError, remove_if_empty
from ._common import (
    Mount,
    cause_errno,
    kill_until_empty,
    list_pids,
    mount_table,
    own_cgroups,
    pids_max,
    rdma_lines,
    read_int,
    read_keyed,
    read_text,
    relative_to_mount,
    remove_tree,
    sigkill_all,
    wait_for,
    write_cpuset,
    write_value,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KNOWN_CONTROLLERS = frozenset({
    "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory", "misc",
    "net_cls", "net_prio", "perf_event", "pids", "rdma", "debug",
})
FREEZE_TIMEOUT = 2.0
DESTROY_TIMEOUT = 5.0
MEMSW = "memory.memsw.limit_in_bytes"
SWAP_OFF = "swap accounting is off: boot with swapaccount=1 to limit swap"
# An unlimited memory.limit_in_bytes reads back as the page counter's maximum (2^63 - 4096).
UNLIMITED_BYTES = 1 << 62
THROTTLE_FILES = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}
MEM = "linux.resources.memory"
CPU = "linux.resources.cpu"
BLKIO = "linux.resources.blockIO"


def discover_hierarchies(root: str) -> dict[str, Mount]:
    """Controller (and "name=systemd"-style names) -> its v1 mount below `root`; comounted
    controllers (cpu,cpuacct) get the same mount."""
    prefix = os.path.normpath(root) + "/"
    found: dict[str, Mount] = {}
    for mount in mount_table():
        if mount.fstype != "cgroup" or not mount.mountpoint.startswith(prefix):
            continue
        for option in mount.super_options:
            if option in KNOWN_CONTROLLERS or option.startswith("name="):
                found.setdefault(option, mount)
    return found


class CgroupV1:
    """The container's cgroup in every v1 hierarchy. `relative` is absolute ("/docker/abc",
    below each hierarchy's root) or relative ("foo/bar", below this process's own cgroup in
    each hierarchy). Tests pass `hierarchies` (name -> mount point) instead of mountinfo."""

    version = 1

    def __init__(self, root: str, relative: str,
                 hierarchies: dict[str, str] | None = None) -> None:
        self.root = root
        mount_roots: dict[str, str] = {}
        if hierarchies is None:
            found = discover_hierarchies(root)
            hierarchies = {name: mount.mountpoint for name, mount in found.items()}
            mount_roots = {name: mount.root for name, mount in found.items()}
        if not hierarchies:
            raise CgroupError(f"no cgroup v1 hierarchy is mounted under {root}")
        owned = {} if relative.startswith("/") else own_cgroups()
        self._mounts = dict(hierarchies)
        self._paths: dict[str, str] = {}
        for name, mountpoint in hierarchies.items():
            inner = relative
            if not relative.startswith("/"):
                base = relative_to_mount(owned.get(name, "/"), mount_roots.get(name, "/"))
                inner = base.rstrip("/") + "/" + relative
            if not inner.strip("/"):
                raise CgroupError(f"refusing to manage the root cgroup of {mountpoint}")
            self._paths[name] = os.path.join(mountpoint, inner.strip("/"))

    @classmethod
    def from_paths(cls, paths: dict[str, str], root: str) -> "CgroupV1":
        """The manager for directories an earlier paths() returned (no mountinfo read)."""
        manager = cls.__new__(cls)
        manager.root = root
        manager._mounts = {}
        manager._paths = dict(paths)
        return manager

    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    def _dirs(self) -> list[str]:
        return list(dict.fromkeys(self._paths.values()))  # comounted hierarchies once

    def _dir(self, hierarchy: str, field: str) -> str:
        path = self._paths.get(hierarchy)
        if path is None:
            raise CgroupError(f"{field}: the {hierarchy} cgroup hierarchy is not mounted "
                              f"under {self.root}")
        return path

    # -- lifecycle ------------------------------------------------------------------------

    def create(self) -> None:
        for name, path in self._paths.items():
            try:
                if name == "cpuset":
                    self._create_cpuset(self._mounts[name], path)
                else:
                    os.makedirs(path, 0o755, exist_ok=True)
            except OSError as e:
                raise CgroupError(f"creating cgroup {path}: {e.strerror}") from e

    @staticmethod
    def _create_cpuset(mountpoint: str, path: str) -> None:
        """A new cpuset cgroup starts with empty cpus and mems and the kernel refuses tasks
        until both are set, so copy them down from the parent at every level (as runc)."""
        parent = mountpoint
        for part in os.path.relpath(path, mountpoint).split("/"):
            current = os.path.join(parent, part)
            os.makedirs(current, 0o755, exist_ok=True)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not read_text(current, name):
                    write_value(current, name, read_text(parent, name) or "",
                                f"copying {name} from {parent}")
            parent = current

    def add_process(self, pid: int) -> None:
        for path in self._dirs():
            write_value(path, "cgroup.procs", pid, f"adding pid {pid} to {path}")

    def pids(self) -> list[int]:
        for name in ("pids", "memory", "freezer"):
            if name in self._paths:
                return list_pids(self._paths[name])
        return list_pids(self._dirs()[0])

    def _all_pids(self) -> list[int]:
        return sorted({pid for path in self._dirs() for pid in list_pids(path)})

    def destroy(self) -> None:
        if remove_if_empty(self._dirs()):
            return
        freezer = self._paths.get("freezer")
        if freezer and list_pids(freezer):
            # Frozen tasks act on SIGKILL only once thawed; freezing first also keeps the
            # container from forking between our reading cgroup.procs and the kill.
            try:
                self.freeze()
            except CgroupError:
                pass
            try:
                sigkill_all(list_pids(freezer), freezer)
            finally:
                self.thaw()
        kill_until_empty(self._all_pids, self._dirs()[0], DESTROY_TIMEOUT)
        for path in self._dirs():
            remove_tree(path)

    # -- freezer --------------------------------------------------------------------------

    def freeze(self) -> None:
        path = self._dir("freezer", "freeze")

        def frozen() -> bool:
            # The kernel may stop at FREEZING while tasks fork; writing again retries (runc).
            write_value(path, "freezer.state", "FROZEN", "freezing")
            return read_text(path, "freezer.state") == "FROZEN"

        if not wait_for(frozen, FREEZE_TIMEOUT):
            self.thaw()  # better running than stuck half frozen
            raise CgroupError(f"could not freeze {path} within {FREEZE_TIMEOUT:g} s")

    def thaw(self) -> None:
        path = self._dir("freezer", "thaw")
        write_value(path, "freezer.state", "THAWED", "thawing")
        if not wait_for(lambda: read_text(path, "freezer.state") == "THAWED", FREEZE_TIMEOUT):
            raise CgroupError(f"could not thaw {path}: is a parent cgroup frozen?")

    def is_frozen(self) -> bool:
        path = self._paths.get("freezer")
        if read_text(path, "freezer.state") != "FROZEN":
            return False
        # Frozen only because a parent is: runc reports that as not paused.
        return read_text(path, "freezer.self_freezing") != "0"

    # -- resources ------------------------------------------------------------------------

    def apply_resources(self, resources: "dict[str, Any]") -> None:
        if resources.get("unified"):
            raise CgroupError("linux.resources.unified: cgroup v2 files cannot be set "
                              "on cgroup v1")
        cpu = resources.get("cpu") or {}
        self._apply_cpuset(cpu)
        self._apply_devices(resources.get("devices") or [])
        self._apply_memory(resources.get("memory") or {})
        self._apply_cpu(cpu)
        self._apply_pids(resources.get("pids") or {})
        self._apply_block_io(resources.get("blockIO") or {})
        self._apply_hugepages(resources.get("hugepageLimits") or [])
        self._apply_network(resources.get("network") or {})
        for i, line in enumerate(rdma_lines(resources.get("rdma") or {})):
            field = f"linux.resources.rdma[{i}]"
            write_value(self._dir("rdma", field), "rdma.max", line, field)

    def _apply_cpuset(self, cpu: "dict[str, Any]") -> None:
        for key in ("cpus", "mems"):
            if cpu.get(key):
                field = f"{CPU}.{key}"
                write_cpuset(self._dir("cpuset", field), f"cpuset.{key}", cpu[key], field,
                             f"cpuset.{key}")

    def _apply_devices(self, rules: "list[dict[str, Any]]") -> None:
        # Written in order, as given: Docker's list starts with a deny-all ("a *:* rwm").
        for i, rule in enumerate(rules):
            field = f"linux.resources.devices[{i}]"
            name = "devices.allow" if rule.get("allow") else "devices.deny"
            write_value(self._dir("devices", field), name, device_rule(rule), field)

    def _apply_memory(self, memory: "dict[str, Any]") -> None:
        limit = memory.get("limit") or 0
        swap = memory.get("swap") or 0
        reservation = memory.get("reservation") or 0
        swappiness = memory.get("swappiness")
        if swappiness == -1:
            swappiness = None
        if not (limit or swap or reservation or memory.get("disableOOMKiller")
                or swappiness is not None):
            return  # kernel, kernelTCP: deprecated by Linux 5.4, ignored (as runc does)
        path = self._dir("memory", MEM)
        self._set_limit_and_swap(path, limit, swap)
        if reservation:
            write_value(path, "memory.soft_limit_in_bytes", reservation, f"{MEM}.reservation")
        if memory.get("disableOOMKiller"):
            write_value(path, "memory.oom_control", 1, f"{MEM}.disableOOMKiller")
        if swappiness is not None:
            if not 0 <= swappiness <= 100:
                raise CgroupError(f"{MEM}.swappiness: must be 0 to 100, got {swappiness}")
            write_value(path, "memory.swappiness", swappiness, f"{MEM}.swappiness")

    @staticmethod
    def _set_limit_and_swap(path: str, limit: int, swap: int) -> None:
        """memsw (memory+swap) may never be below the memory limit, so which of the two
        goes first depends on whether the limit grows or shrinks (runc's rule)."""
        if limit == -1 and swap == 0 and os.path.exists(os.path.join(path, MEMSW)):
            swap = -1  # unlimited memory means unlimited memory+swap too
        writes = []
        if limit:
            writes.append(("memory.limit_in_bytes", limit, f"{MEM}.limit", ""))
        if swap:
            writes.append((MEMSW, swap, f"{MEM}.swap", SWAP_OFF))
        if limit and swap:
            current = read_int(path, "memory.limit_in_bytes") or 0
            if swap == -1 or current < swap:
                writes.reverse()
        for name, value, field, missing in writes:
            write_value(path, name, value, field, missing)

    def _apply_cpu(self, cpu: "dict[str, Any]") -> None:
        keys = ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod")
        if not any(cpu.get(key) for key in keys) and cpu.get("idle") is None \
                and cpu.get("burst") is None:
            return
        path = self._dir("cpu", CPU)
        if cpu.get("shares"):
            _set_shares(path, cpu["shares"])
        burst = cpu.get("burst")
        _write_pair(path, [("cpu.cfs_period_us", cpu.get("period") or None, "period"),
                           ("cpu.cfs_burst_us", burst, "burst")],
                    ("cpu.cfs_quota_us", cpu.get("quota") or None, "quota"))
        if cpu.get("idle") is not None:
            write_value(path, "cpu.idle", cpu["idle"], f"{CPU}.idle")
        _write_pair(path, [("cpu.rt_period_us", cpu.get("realtimePeriod") or None,
                            "realtimePeriod")],
                    ("cpu.rt_runtime_us", cpu.get("realtimeRuntime") or None,
                     "realtimeRuntime"))

    def _apply_pids(self, pids: "dict[str, Any]") -> None:
        if pids.get("limit") is not None:
            field = "linux.resources.pids.limit"
            write_value(self._dir("pids", field), "pids.max", pids_max(pids["limit"]), field)

    def _apply_block_io(self, bio: "dict[str, Any]") -> None:
        if not any(bio.get(key) for key in ("weight", "leafWeight", "weightDevice",
                                             *THROTTLE_FILES)):
            return
        path = self._dir("blkio", BLKIO)
        # Kernels with BFQ and no CFQ (5.0+) have only blkio.bfq.weight.
        prefix = "blkio." if os.path.exists(os.path.join(path, "blkio.weight")) else "blkio.bfq."
        if bio.get("weight"):
            write_value(path, prefix + "weight", bio["weight"], f"{BLKIO}.weight")
        if bio.get("leafWeight"):
            write_value(path, "blkio.leaf_weight", bio["leafWeight"], f"{BLKIO}.leafWeight")
        for i, dev in enumerate(bio.get("weightDevice") or []):
            field = f"{BLKIO}.weightDevice[{i}]"
            if dev.get("weight"):
                write_value(path, prefix + "weight_device", _device_value(dev, "weight"), field)
            if dev.get("leafWeight"):
                write_value(path, "blkio.leaf_weight_device", _device_value(dev, "leafWeight"),
                            field)
        for key, name in THROTTLE_FILES.items():
            for i, dev in enumerate(bio.get(key) or []):
                write_value(path, name, _device_value(dev, "rate"), f"{BLKIO}.{key}[{i}]")

    def _apply_hugepages(self, limits: "list[dict[str, Any]]") -> None:
        for i, limit in enumerate(limits):
            field = f"linux.resources.hugepageLimits[{i}]"
            path = self._dir("hugetlb", field)
            size = _page_size(limit, field)
            write_value(path, f"hugetlb.{size}.limit_in_bytes", limit.get("limit"), field)
            # Reservations (5.7+) are limited too, or a mapping could reserve past the limit.
            rsvd = f"hugetlb.{size}.rsvd.limit_in_bytes"
            if os.path.exists(os.path.join(path, rsvd)):
                write_value(path, rsvd, limit.get("limit"), field)

    def _apply_network(self, network: "dict[str, Any]") -> None:
        if network.get("classID") is not None:
            field = "linux.resources.network.classID"
            write_value(self._dir("net_cls", field), "net_cls.classid", network["classID"],
                        field)
        for i, prio in enumerate(network.get("priorities") or []):
            field = f"linux.resources.network.priorities[{i}]"
            write_value(self._dir("net_prio", field), "net_prio.ifpriomap",
                        f"{prio.get('name')} {prio.get('priority')}", field)

    # -- stats ----------------------------------------------------------------------------

    def stats(self) -> "dict[str, Any]":
        memory = self._paths.get("memory")
        limit = read_int(memory, "memory.limit_in_bytes")
        cpu = self._paths.get("cpu")
        acct = self._paths.get("cpuacct")
        throttling = read_keyed(cpu, "cpu.stat")
        pids = self._paths.get("pids")
        return {
            "memory": {
                "usage": read_int(memory, "memory.usage_in_bytes") or 0,
                "limit": None if limit is None or limit >= UNLIMITED_BYTES else limit,
                "max_usage": read_int(memory, "memory.max_usage_in_bytes") or 0,
                "stats": read_keyed(memory, "memory.stat"),
            },
            "cpu": {
                "usage_total_ns": read_int(acct, "cpuacct.usage") or 0,
                "usage_per_cpu_ns": [int(v) for v in
                                     (read_text(acct, "cpuacct.usage_percpu") or "").split()],
                "throttling": {
                    "periods": throttling.get("nr_periods", 0),
                    "throttled_periods": throttling.get("nr_throttled", 0),
                    "throttled_time_ns": throttling.get("throttled_time", 0),
                },
            },
            "pids": {
                "current": read_int(pids, "pids.current") or 0,
                "limit": read_int(pids, "pids.max"),
            },
        }


def device_rule(rule: "dict[str, Any]") -> str:
    """An OCI device rule as devices.allow/deny take it: "c 1:3 rwm", "*" for any number."""
    def number(value: int | None) -> str:
        return "*" if value is None or value < 0 else str(value)

    return (f"{rule.get('type') or 'a'} {number(rule.get('major'))}:"
            f"{number(rule.get('minor'))} {rule.get('access') or 'rwm'}")


def _device_value(dev: "dict[str, Any]", key: str) -> str:
    return f"{dev.get('major')}:{dev.get('minor')} {dev.get(key)}"


def _page_size(limit: "dict[str, Any]", field: str) -> str:
    size = str(limit.get("pageSize") or "")
    if not size or "/" in size:
        raise CgroupError(f"{field}.pageSize: bad page size {size!r}")
    return size


def _set_shares(path: str, shares: int) -> None:
    write_value(path, "cpu.shares", shares, f"{CPU}.shares")
    # The kernel clamps instead of refusing; read back to report the bound (as runc).
    actual = read_int(path, "cpu.shares")
    if actual is not None and actual != shares:
        bound = "maximum" if shares > actual else "minimum"
        raise CgroupError(f"{CPU}.shares: the {bound} allowed cpu-shares is {actual}")


def _write_pair(path: str, first: list[tuple[str, int | None, str]],
                then: tuple[str, int | None, str]) -> None:
    """Writes `first`, then `then`. The kernel checks values such as cfs_period against the
    current quota and the parent's, so one refused with EINVAL is retried after `then` has
    been written, when there is a `then` (runc does the same)."""
    retry = []
    for name, value, key in first:
        if value is None:
            continue
        try:
            write_value(path, name, value, f"{CPU}.{key}")
        except CgroupError as e:
            if then[1] is None or cause_errno(e) != errno.EINVAL:
                raise
            retry.append((name, value, key))
    name, value, key = then
    if value is not None:
        write_value(path, name, value, f"{CPU}.{key}")
    for name, value, key in retry:
        write_value(path, name, value, f"{CPU}.{key}")
