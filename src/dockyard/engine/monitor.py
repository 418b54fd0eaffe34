"""Looking at and adjusting running containers: `top`, `stats`, `update`, and the prunes.

The container's processes and usage come from its cgroup (<cgroup-parent>/<id>, where
containers.py asks the runtime to put it); `top` formats them with the host's `ps`, as
dockerd does. `update` changes the record's HostConfig and, while the container runs,
writes the new limits into the live cgroup.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from typing import Any

from ..runtime.cgroups import CgroupError, open_cgroup
from ..runtime.cgroups._common import read_keyed, read_text
from .containers import ContainerService
from .errors import Conflict, EngineError, InvalidParameter, NotFound
from .images import ImageService
from .oci_spec import _resources as oci_resources
from .timefmt import ZERO_TIME, parse_rfc3339, rfc3339

_CLK_TCK = os.sysconf("SC_CLK_TCK")
# "pid=PID" is how ps is told a column's title; any other column named PID would fool the
# search for the PID column (moby's validatePSArgs).
_PS_TITLE = re.compile(r"\s+([^\s]*)=\s*(PID[^\s]*)")
_ASCII_SPACE = " \t\n\v\f\r"


class ContainerMonitor:
    def __init__(self, containers: ContainerService, images: ImageService) -> None:
        self.containers = containers
        self.images = images
        self._update_lock = threading.Lock()

    # -- cgroup ---------------------------------------------------------------------------

    def cgroup(self, container_id: str) -> Any:
        """The container's cgroup manager (it exists while the container runs)."""
        return open_cgroup(f"{self.containers.options.cgroup_parent}/{container_id}",
                           container_id)

    def _running(self, ref: str) -> dict[str, Any]:
        record = self.containers.get(ref)
        state = record["State"]
        if not state["Running"]:
            raise Conflict(f"Container {record['Id']} is not running")
        if state.get("Restarting"):
            raise Conflict(f"Container {record['Id']} is restarting, wait until the "
                           "container is running")
        return record

    # -- top ------------------------------------------------------------------------------

    def top(self, ref: str, ps_args: str = "") -> dict[str, Any]:
        """GET /containers/{id}/top: `ps` (default -ef) restricted to the container's pids."""
        ps_args = ps_args or "-ef"
        for key, value in _PS_TITLE.findall(ps_args):
            if key != "pid":
                raise InvalidParameter(f'specifying "{key}={value}" is not allowed')
        record = self._running(ref)
        try:
            pids = self.cgroup(record["Id"]).pids()
        except (CgroupError, OSError) as e:
            raise EngineError(f"reading the processes of {record['Id']}: {e}") from None
        args = ps_args.split(" ")
        selected = ["-q", ",".join(map(str, pids))] if pids else []
        result = subprocess.run(["ps", *args, *selected], capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            # Some options (f, say) don't mix with -q: all processes, filtered below.
            result = subprocess.run(["ps", *args], capture_output=True, text=True,
                                    check=False)
            if result.returncode != 0:
                reason = (result.stderr.splitlines() or [f"exit status {result.returncode}"])
                raise EngineError(f"ps: {reason[0]}")
        listing = parse_ps_output(result.stdout, pids)
        self.containers.events.emit("container", "top", record["Id"],
                                    self.containers._attributes(record))
        return listing

    # -- stats ----------------------------------------------------------------------------

    def sample(self, ref: str, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        """One stats object as dockerd sends it; `previous` (the sample before) fills
        precpu_stats and preread. A container that does not run gives the empty one."""
        record = self.containers.get(ref)
        base = empty_stats(record)
        if not record["State"]["Running"]:
            return base
        try:
            manager = self.cgroup(record["Id"])
            raw = manager.stats()
            paths = manager.paths()
        except (CgroupError, OSError):
            return base
        read_ns = time.time_ns()
        base["read"] = rfc3339(read_ns)
        base["_read_ns"] = read_ns
        base["pids_stats"] = _pids_stats(raw.get("pids") or {})
        base["blkio_stats"] = _blkio_stats(paths)
        base["cpu_stats"] = _cpu_stats(raw.get("cpu") or {}, paths)
        base["memory_stats"] = _memory_stats(raw.get("memory") or {}, paths)
        if previous and previous.get("_read_ns"):
            base["preread"] = previous["read"]
            base["precpu_stats"] = previous["cpu_stats"]
        return base

    # -- update ---------------------------------------------------------------------------

    def update(self, ref: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /containers/{id}/update: new resources and restart policy, saved in the
        record and written to the cgroup of a running container."""
        record = self.containers.get(ref)
        with self._update_lock:
            host_config = record["HostConfig"]
            new = _updated_host_config(host_config, body)
            if record["State"]["Running"]:
                resources = oci_resources(new, bool(new.get("Privileged")))
                resources.pop("devices", None)  # unchanged, and rewriting them races
                if body.get("PidsLimit") is not None and "pids" not in resources:
                    resources["pids"] = {"limit": -1}  # 0 or -1: back to unlimited
                try:
                    self.cgroup(record["Id"]).apply_resources(resources)
                except (CgroupError, OSError) as e:
                    raise EngineError(f"Cannot update container {record['Id']}: {e}") from None
            host_config.clear()
            host_config.update(new)
            self.containers.store.save(record)
        self.containers.events.emit("container", "update", record["Id"],
                                    self.containers._attributes(record))
        return {"Warnings": []}

    # -- prune ----------------------------------------------------------------------------

    def prune_containers(self, until: float | None = None,
                         labels: list[str] | None = None,
                         not_labels: list[str] | None = None) -> dict[str, Any]:
        """POST /containers/prune: removes stopped containers (created before `until`, with
        the `labels` and without the `not_labels`)."""
        deleted: list[str] = []
        reclaimed = 0
        try:
            sizes = self.containers.snapshots.usage().snapshots
        except Exception:  # noqa: BLE001 - sizes are informative only
            sizes = {}
        for record in list(self.containers.store.all()):
            state = record["State"]
            if state["Running"] or state.get("RemovalInProgress"):
                continue
            if until is not None and parse_rfc3339(record["Created"]) >= until:
                continue
            record_labels = record["Config"].get("Labels") or {}
            if not matches_labels(record_labels, labels or [], not_labels or []):
                continue
            try:
                self.containers.remove(record["Id"])
            except (NotFound, Conflict):
                continue
            deleted.append(record["Id"])
            reclaimed += int(sizes.get(record["Id"], 0))
        self.containers.events.emit("container", "prune", "",
                                    {"reclaimed": str(reclaimed)})
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def prune_images(self, dangling: bool = True, until: float | None = None,
                     labels: list[str] | None = None,
                     not_labels: list[str] | None = None) -> dict[str, Any]:
        """POST /images/prune: images no container uses; only untagged ones when
        `dangling` (the default), every such image otherwise (`docker image prune -a`)."""
        used = {r["Image"] for r in self.containers.store.all()}
        deleted: list[dict[str, str]] = []
        reclaimed = 0
        for target, image in self.images.all():
            image_id = str(image.id)
            if image_id in used:
                continue
            names = self.images.names_of(target)
            if dangling and names:
                continue
            if until is not None and self.images.created(target) >= until:
                continue
            image_labels = _image_labels(image)
            if not matches_labels(image_labels, labels or [], not_labels or []):
                continue
            try:
                # By ID: force takes every name along (no container uses it, checked above).
                entries = self.images.remove(image_id, force=bool(names), in_use_by=[])
            except (NotFound, Conflict):
                continue
            deleted.extend(entries)
            if any("Deleted" in entry for entry in entries):
                reclaimed += self.images.size(image)
        self.containers.events.emit("image", "prune", "", {"reclaimed": str(reclaimed)})
        return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


# -- top ------------------------------------------------------------------------------------

def _fields(line: str) -> list[str]:
    return [field for field in re.split(f"[{re.escape(_ASCII_SPACE)}]+", line) if field]


def parse_ps_output(output: str, pids: list[int]) -> dict[str, Any]:
    """Titles and the rows whose PID is one of `pids` (moby's parsePSOutput): the last
    column takes the rest of the line, and thread lines ("-" for PID, from `ps m`) follow
    their process."""
    lines = output.split("\n")
    titles = _fields(lines[0])
    if "PID" not in titles:
        raise EngineError("Couldn't find PID field in ps output")
    pid_index = titles.index("PID")
    wanted = set(pids)
    processes: list[list[str]] = []
    previous_kept = False
    for line in lines[1:]:
        if not line:
            continue
        fields = _fields(line)
        if len(fields) <= pid_index:
            continue
        if fields[pid_index] == "-":
            if previous_kept:
                processes.append(_row(fields, len(titles)))
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise EngineError(f"Unexpected pid '{fields[pid_index]}'") from None
        previous_kept = pid in wanted
        if previous_kept:
            processes.append(_row(fields, len(titles)))
    return {"Titles": titles, "Processes": processes}


def _row(fields: list[str], columns: int) -> list[str]:
    return [*fields[:columns - 1], " ".join(fields[columns - 1:])]


# -- stats ----------------------------------------------------------------------------------

def empty_stats(record: dict[str, Any]) -> dict[str, Any]:
    """What dockerd sends for a container that does not run: Go's zero values."""
    return {
        "read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {},
        "blkio_stats": {key: None for key in _BLKIO_KEYS},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": _zero_cpu(), "precpu_stats": _zero_cpu(), "memory_stats": {},
        "name": record["Name"], "id": record["Id"],
    }


def public(stats: dict[str, Any]) -> dict[str, Any]:
    """The sample without its private bookkeeping keys."""
    return {key: value for key, value in stats.items() if not key.startswith("_")}


_BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive",
               "io_queue_recursive", "io_service_time_recursive", "io_wait_time_recursive",
               "io_merged_recursive", "io_time_recursive", "sectors_recursive")


def _zero_cpu() -> dict[str, Any]:
    return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def system_cpu_usage() -> int:
    """The host's CPU time in ns, from the first line of /proc/stat (as dockerd)."""
    with open("/proc/stat", encoding="ascii") as f:
        for line in f:
            fields = line.split()
            if fields and fields[0] == "cpu":
                ticks = sum(int(v) for v in fields[1:8])
                return ticks * 1_000_000_000 // _CLK_TCK
    return 0


def host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _pids_stats(pids: dict[str, Any]) -> dict[str, int]:
    result = {"current": int(pids.get("current") or 0)}
    if pids.get("limit"):
        result["limit"] = int(pids["limit"])
    return result


def _cpu_stats(cpu: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    if "" in paths:  # v2: cpu.stat has user and system time in µs
        stat = read_keyed(paths[""], "cpu.stat")
        user = stat.get("user_usec", 0) * 1000
        kernel = stat.get("system_usec", 0) * 1000
    else:  # v1: cpuacct.stat in clock ticks
        stat = read_keyed(paths.get("cpuacct"), "cpuacct.stat")
        user = stat.get("user", 0) * 1_000_000_000 // _CLK_TCK
        kernel = stat.get("system", 0) * 1_000_000_000 // _CLK_TCK
    usage: dict[str, Any] = {"total_usage": int(cpu.get("usage_total_ns") or 0),
                             "usage_in_kernelmode": kernel, "usage_in_usermode": user}
    if cpu.get("usage_per_cpu_ns"):
        usage["percpu_usage"] = list(cpu["usage_per_cpu_ns"])
    throttling = cpu.get("throttling") or {}
    return {
        "cpu_usage": usage,
        "system_cpu_usage": system_cpu_usage(),
        "online_cpus": os.sysconf("SC_NPROCESSORS_ONLN"),
        "throttling_data": {"periods": int(throttling.get("periods") or 0),
                            "throttled_periods": int(throttling.get("throttled_periods") or 0),
                            "throttled_time": int(throttling.get("throttled_time_ns") or 0)},
    }


def _memory_stats(memory: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    machine = host_memory()
    limit = memory.get("limit")
    # Unlimited (or above what the host has): the host's memory, as dockerd reports it.
    if not limit or limit > machine:
        limit = machine
    result: dict[str, Any] = {"usage": int(memory.get("usage") or 0),
                              "stats": dict(memory.get("stats") or {}), "limit": limit}
    if "" not in paths:  # v1 only: v2 has no max_usage or failcnt
        result["max_usage"] = int(memory.get("max_usage") or 0)
        failcnt = read_text(paths.get("memory"), "memory.failcnt") or ""
        result["failcnt"] = int(failcnt) if failcnt.isdigit() else 0
    return result


def _blkio_stats(paths: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = {key: None for key in _BLKIO_KEYS}
    if "" in paths:
        service_bytes, serviced = [], []
        for line in (read_text(paths[""], "io.stat") or "").splitlines():
            device, *pairs = line.split()
            major, _, minor = device.partition(":")
            values = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
            for op, bytes_key, ios_key in (("read", "rbytes", "rios"),
                                           ("write", "wbytes", "wios")):
                entry = {"major": int(major), "minor": int(minor), "op": op}
                service_bytes.append({**entry, "value": int(values.get(bytes_key, 0))})
                serviced.append({**entry, "value": int(values.get(ios_key, 0))})
        result["io_service_bytes_recursive"] = service_bytes or None
        result["io_serviced_recursive"] = serviced or None
        return result
    blkio = paths.get("blkio")
    for key, name in (("io_service_bytes_recursive", "blkio.throttle.io_service_bytes"),
                      ("io_serviced_recursive", "blkio.throttle.io_serviced")):
        entries = []
        for line in (read_text(blkio, name) or "").splitlines():
            fields = line.split()
            if len(fields) != 3 or ":" not in fields[0]:
                continue
            major, _, minor = fields[0].partition(":")
            entries.append({"major": int(major), "minor": int(minor), "op": fields[1],
                            "value": int(fields[2])})
        result[key] = entries or None
    return result


# -- update ---------------------------------------------------------------------------------

_UPDATABLE = ("BlkioWeight", "CpuShares", "NanoCpus", "CpuPeriod", "CpuQuota", "CpusetCpus",
              "CpusetMems", "Memory", "MemorySwap", "MemoryReservation")


def _updated_host_config(current: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """moby's UpdateContainer rules: zero or absent values leave a setting as it was;
    NanoCpus and CpuPeriod/CpuQuota exclude each other."""
    def given(key: str) -> Any:
        return body.get(key) or None

    def conflict(message: str) -> Conflict:
        return Conflict(f"Cannot update container: {message}")

    if given("NanoCpus") and current.get("CpuPeriod"):
        raise conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has "
                       "already been set")
    if given("NanoCpus") and current.get("CpuQuota"):
        raise conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has "
                       "already been set")
    if given("CpuPeriod") and current.get("NanoCpus"):
        raise conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has "
                       "already been set")
    if given("CpuQuota") and current.get("NanoCpus"):
        raise conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has "
                       "already been set")
    memory, swap = given("Memory"), given("MemorySwap")
    current_swap = int(current.get("MemorySwap") or 0)
    if memory and not swap and current_swap > 0 and int(memory) > current_swap:
        raise conflict("Memory limit should be smaller than already set memoryswap limit, "
                       "update the memoryswap at the same time")
    if memory and swap and int(swap) > 0 and int(swap) < int(memory):
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage")
    if memory is not None and int(memory) < 6 * 1024 * 1024:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    new = dict(current)
    for key in _UPDATABLE:
        if given(key) is not None:
            new[key] = body[key]
    if body.get("PidsLimit") is not None:
        limit = int(body["PidsLimit"])
        new["PidsLimit"] = limit if limit > 0 else None
    policy = body.get("RestartPolicy") or {}
    if policy.get("Name"):
        if policy["Name"] not in ("no", "always", "unless-stopped", "on-failure"):
            raise InvalidParameter(f"invalid restart policy '{policy['Name']}'")
        if policy["Name"] != "no" and current.get("AutoRemove"):
            raise conflict("Restart policy cannot be updated because AutoRemove is enabled "
                           "for the container")
        if policy["Name"] != "on-failure" and policy.get("MaximumRetryCount"):
            raise InvalidParameter("invalid restart policy: maximum retry count can only be "
                                   "used with 'on-failure'")
        new["RestartPolicy"] = {"Name": policy["Name"],
                                "MaximumRetryCount": int(policy.get("MaximumRetryCount")
                                                         or 0)}
    return new


# -- prune ----------------------------------------------------------------------------------

def matches_labels(labels: dict[str, str], wanted: list[str], unwanted: list[str]) -> bool:
    """Docker's label filters: every "k" / "k=v" of `wanted` holds, none of `unwanted`."""
    def holds(item: str) -> bool:
        key, sep, value = item.partition("=")
        return key in labels and (not sep or labels[key] == value)

    return all(holds(item) for item in wanted) and not any(holds(i) for i in unwanted)


def _image_labels(image: Any) -> dict[str, str]:
    try:
        return dict(image.image_config.config.labels or {})
    except AttributeError:
        return {}
