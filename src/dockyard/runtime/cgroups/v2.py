"""cgroup v2: one directory in the unified tree, written the way runc's fs2 driver does.

Device rules are accepted but not enforced here: v2 has no devices.allow; it takes an eBPF
program attached to the cgroup. Until the runtime loads one, device access in a v2
container rests on what the runtime creates in /dev (mknod) and mounts into the container.
net_cls/net_prio do not exist on v2 either, so `network` is ignored, as runc does.
"""

import errno
import os

from . import CgroupError, remove_if_empty
from ._common import (
    cause_errno,
    kill_until_empty,
    list_pids,
    pids_max,
    rdma_lines,
    read_int,
    read_keyed,
    read_text,
    remove_tree,
    wait_for,
    write_cpuset,
    write_value,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What apply_resources may write to; enabled in each ancestor when its parent offers it.
CONTROLLERS = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma")
FREEZE_TIMEOUT = 2.0
DESTROY_TIMEOUT = 5.0
MEM = "linux.resources.memory"
CPU = "linux.resources.cpu"
BLKIO = "linux.resources.blockIO"
IO_MAX_KEYS = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
}


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144, default 1024) -> cpu.weight (1..10000, default 100), by runc's
    linear map; 1024 lands on 39, not 100, exactly as with runc."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_to_io_weight(weight: int) -> int:
    """blkio.weight (10..1000) -> io.weight (1..10000), runc's conversion."""
    weight = min(max(weight, 10), 1000)
    return 1 + ((weight - 10) * 9999) // 990


def swap_max(limit: int, swap: int) -> str | None:
    """memory.swap.max for OCI memory.swap, which counts memory+swap as v1 did, or None to
    leave the file alone (runc's ConvertMemorySwapToCgroupV2Value)."""
    if swap == -1 or (limit == -1 and swap == 0):
        return "max"  # unlimited memory without a swap value means unlimited swap too
    if swap == 0:
        return None
    if limit in (0, -1):
        raise CgroupError(f"{MEM}.swap: a swap limit needs a memory limit")
    if limit < 0:
        raise CgroupError(f"{MEM}.limit: invalid value {limit}")
    if swap < limit:
        raise CgroupError(f"{MEM}.swap: memory+swap ({swap}) must be at least the memory "
                          f"limit ({limit})")
    return str(swap - limit)


class CgroupV2:
    """The container's cgroup at root/relative in the unified tree; `relative` is taken
    below `root` whether or not it starts with "/" (see resolve_relative_path)."""

    version = 2

    def __init__(self, root: str, relative: str) -> None:
        inner = relative.strip("/")
        if not inner:
            raise CgroupError(f"refusing to manage the root cgroup of {root}")
        self.root = os.path.normpath(root)
        self.path = os.path.join(self.root, inner)

    @classmethod
    def from_paths(cls, paths: dict[str, str], root: str) -> "CgroupV2":
        """The manager for the directory an earlier paths() returned."""
        return cls(root, os.path.relpath(paths[""], root))

    def paths(self) -> dict[str, str]:
        return {"": self.path}

    def _write(self, name: str, value: object, field: str) -> None:
        controller = name.partition(".")[0]
        write_value(self.path, name, value, field,
                    f"the {controller} controller is not enabled for this cgroup")

    # -- lifecycle ------------------------------------------------------------------------

    def create(self) -> None:
        current = self.root
        for part in os.path.relpath(self.path, self.root).split("/"):
            _enable_controllers(current)
            current = os.path.join(current, part)
            try:
                os.mkdir(current, 0o755)
            except FileExistsError:
                pass
            except OSError as e:
                raise CgroupError(f"creating cgroup {current}: {e.strerror}") from e

    def add_process(self, pid: int) -> None:
        write_value(self.path, "cgroup.procs", pid, f"adding pid {pid} to {self.path}")

    def pids(self) -> list[int]:
        return list_pids(self.path)

    def destroy(self) -> None:
        if remove_if_empty([self.path]):
            return
        # cgroup.kill (5.14+) reaches every task below, frozen ones included, in one write.
        if os.path.exists(os.path.join(self.path, "cgroup.kill")):
            write_value(self.path, "cgroup.kill", 1, f"killing the processes in {self.path}")
        kill_until_empty(self.pids, self.path, DESTROY_TIMEOUT)
        remove_tree(self.path)

    # -- freezer --------------------------------------------------------------------------

    def freeze(self) -> None:
        self._set_frozen("1")

    def thaw(self) -> None:
        self._set_frozen("0")

    def _set_frozen(self, flag: str) -> None:
        doing = "freezing" if flag == "1" else "thawing"
        write_value(self.path, "cgroup.freeze", flag, doing,
                    "the cgroup v2 freezer needs Linux 5.2 or later")
        if not wait_for(lambda: self._events().get("frozen") == flag, FREEZE_TIMEOUT):
            raise CgroupError(f"{doing} {self.path}: cgroup.events does not say frozen "
                              f"{flag} after {FREEZE_TIMEOUT:g} s")

    def _events(self) -> dict[str, str]:
        lines = (read_text(self.path, "cgroup.events") or "").splitlines()
        return dict(line.partition(" ")[::2] for line in lines)

    def is_frozen(self) -> bool:
        return read_text(self.path, "cgroup.freeze") == "1"

    # -- resources ------------------------------------------------------------------------

    def apply_resources(self, resources: "dict[str, Any]") -> None:
        self._apply_pids(resources.get("pids") or {})
        self._apply_memory(resources.get("memory") or {})
        self._apply_io(resources.get("blockIO") or {})
        self._apply_cpu(resources.get("cpu") or {})
        self._apply_hugepages(resources.get("hugepageLimits") or [])
        for i, line in enumerate(rdma_lines(resources.get("rdma") or {})):
            self._write("rdma.max", line, f"linux.resources.rdma[{i}]")
        # Last, so that an explicit file wins over the value derived from an OCI field.
        self._apply_unified(resources.get("unified") or {})

    def _apply_pids(self, pids: "dict[str, Any]") -> None:
        if pids.get("limit") is not None:
            self._write("pids.max", pids_max(pids["limit"]), "linux.resources.pids.limit")

    def _apply_memory(self, memory: "dict[str, Any]") -> None:
        # swappiness, disableOOMKiller and kernel memory have no v2 file; runc ignores them.
        limit = memory.get("limit") or 0
        swap = swap_max(limit, memory.get("swap") or 0)
        if swap is not None:
            try:
                self._write("memory.swap.max", swap, f"{MEM}.swap")
            except CgroupError as e:
                # Without swap there is no memory.swap.max, and "no swap" or "unlimited
                # swap" already hold.
                if cause_errno(e) != errno.ENOENT or swap not in ("max", "0"):
                    raise
        if limit:
            self._write("memory.max", "max" if limit == -1 else limit, f"{MEM}.limit")
        reservation = memory.get("reservation") or 0
        if reservation:
            self._write("memory.low", "max" if reservation == -1 else reservation,
                        f"{MEM}.reservation")

    def _apply_io(self, bio: "dict[str, Any]") -> None:
        weight = bio.get("weight") or 0
        devices = [dev for dev in bio.get("weightDevice") or [] if dev.get("weight")]
        # BFQ takes blkio's own 1..1000 weights, per device too; otherwise io.weight.
        bfq = bool(weight or devices) and os.path.exists(
            os.path.join(self.path, "io.bfq.weight"))
        if weight:
            if bfq:
                self._write("io.bfq.weight", weight, f"{BLKIO}.weight")
            else:
                self._write("io.weight", blkio_to_io_weight(weight), f"{BLKIO}.weight")
        for i, dev in enumerate(devices):
            name, value = (("io.bfq.weight", dev["weight"]) if bfq
                           else ("io.weight", blkio_to_io_weight(dev["weight"])))
            self._write(name, f"{dev.get('major')}:{dev.get('minor')} {value}",
                        f"{BLKIO}.weightDevice[{i}]")
        for key, limit in IO_MAX_KEYS.items():
            for i, dev in enumerate(bio.get(key) or []):
                self._write("io.max", f"{dev.get('major')}:{dev.get('minor')} "
                            f"{limit}={dev.get('rate')}", f"{BLKIO}.{key}[{i}]")

    def _apply_cpu(self, cpu: "dict[str, Any]") -> None:
        if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
            raise CgroupError(f"{CPU}.realtimeRuntime: real-time CPU limits do not exist "
                              "on cgroup v2")
        if cpu.get("shares"):
            self._write("cpu.weight", shares_to_weight(cpu["shares"]), f"{CPU}.shares")
        if cpu.get("idle") is not None:
            self._write("cpu.idle", cpu["idle"], f"{CPU}.idle")
        self._apply_cpu_max(cpu.get("quota") or 0, cpu.get("period") or 0, cpu.get("burst"))
        for key in ("cpus", "mems"):
            if cpu.get(key):
                write_cpuset(self.path, f"cpuset.{key}", cpu[key], f"{CPU}.{key}",
                             f"cpuset.{key}.effective",
                             "the cpuset controller is not enabled for this cgroup")

    def _apply_cpu_max(self, quota: int, period: int, burst: int | None) -> None:
        retry_burst = False
        if burst is not None:
            try:
                self._write("cpu.max.burst", burst, f"{CPU}.burst")
            except CgroupError as e:
                # The burst may not exceed the quota: retry once the new quota is in.
                if not (quota or period) or cause_errno(e) != errno.EINVAL:
                    raise
                retry_burst = True
        if quota or period:
            value = str(quota) if quota > 0 else "max"
            if period:
                value += f" {period}"
            self._write("cpu.max", value, f"{CPU}.quota" if quota else f"{CPU}.period")
        if retry_burst:
            self._write("cpu.max.burst", burst, f"{CPU}.burst")

    def _apply_hugepages(self, limits: "list[dict[str, Any]]") -> None:
        for i, limit in enumerate(limits):
            field = f"linux.resources.hugepageLimits[{i}]"
            size = str(limit.get("pageSize") or "")
            if not size or "/" in size:
                raise CgroupError(f"{field}.pageSize: bad page size {size!r}")
            self._write(f"hugetlb.{size}.max", limit.get("limit"), field)
            rsvd = f"hugetlb.{size}.rsvd.max"
            if os.path.exists(os.path.join(self.path, rsvd)):
                self._write(rsvd, limit.get("limit"), field)

    def _apply_unified(self, unified: "dict[str, Any]") -> None:
        for key, value in unified.items():
            field = f"linux.resources.unified.{key}"
            if "/" in key or key in ("", ".", ".."):
                raise CgroupError(f"{field}: must be the name of a file in the cgroup")
            # Multi-line values (io.max for two devices) take one write per line.
            for line in str(value).splitlines() or [""]:
                self._write(key, line, field)

    # -- stats ----------------------------------------------------------------------------

    def stats(self) -> "dict[str, Any]":
        cpu = read_keyed(self.path, "cpu.stat")
        return {
            "memory": {
                "usage": read_int(self.path, "memory.current") or 0,
                "limit": read_int(self.path, "memory.max"),
                "max_usage": read_int(self.path, "memory.peak") or 0,  # 5.19+
                "stats": read_keyed(self.path, "memory.stat"),
            },
            "cpu": {
                "usage_total_ns": cpu.get("usage_usec", 0) * 1000,
                "usage_per_cpu_ns": [],  # v2 keeps no per-CPU usage
                "throttling": {
                    "periods": cpu.get("nr_periods", 0),
                    "throttled_periods": cpu.get("nr_throttled", 0),
                    "throttled_time_ns": cpu.get("throttled_usec", 0) * 1000,
                },
            },
            "pids": {
                "current": read_int(self.path, "pids.current") or 0,
                "limit": read_int(self.path, "pids.max"),
            },
        }


def _enable_controllers(path: str) -> None:
    """Lets the children of `path` use the controllers `path` itself has. Failure is not an
    error: a cgroup with processes of its own cannot delegate (the no-internal-process
    rule), and a resource that then cannot be set fails with its field named."""
    offered = (read_text(path, "cgroup.controllers") or "").split()
    enabled = (read_text(path, "cgroup.subtree_control") or "").split()
    wanted = [c for c in CONTROLLERS if c in offered and c not in enabled]
    if not wanted:
        return
    try:
        write_value(path, "cgroup.subtree_control", " ".join("+" + c for c in wanted))
    except CgroupError:
        for controller in wanted:  # the write is all or nothing; take what we can
            try:
                write_value(path, "cgroup.subtree_control", "+" + controller)
            except CgroupError:
                pass
