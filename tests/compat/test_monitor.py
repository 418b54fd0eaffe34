"""docker top, stats, update and the prunes, with the real docker CLI against dockyardd."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from tests.compat.conftest import FIXTURES, Daemon

IMAGE = "dockyard-fixture:1.0"
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _run_sleeper(daemon: Daemon, name: str) -> str:
    return daemon.docker("run", "-d", "--name", name, IMAGE, "sleep", "300",
                         check=True).stdout.strip()


def _cgroup_file(daemon: Daemon, container_id: str, v1_controller: str, v1_name: str,
                 v2_name: str) -> str:
    relative = f"{daemon.cgroup_parent.strip('/')}/{container_id}"
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return (CGROUP_ROOT / relative / v2_name).read_text().strip()
    return (CGROUP_ROOT / v1_controller / relative / v1_name).read_text().strip()


def test_top_lists_the_containers_processes(daemon: Daemon) -> None:
    name = _unique("top")
    _run_sleeper(daemon, name)
    try:
        out = daemon.docker("top", name, check=True).stdout.splitlines()
        assert out[0].split()[:3] == ["UID", "PID", "PPID"]
        assert any(line.endswith("sleep 300") for line in out[1:]), out
        assert len(out) == 2, out  # only the container's process, not the host's
        custom = daemon.docker("top", name, "-o", "pid,comm", check=True).stdout.split()
        assert custom[:2] == ["PID", "COMMAND"] and custom[3] == "sleep"
        daemon.docker("stop", "-t", "1", name, check=True)
        stopped = daemon.docker("top", name)
        assert stopped.returncode == 1
        assert "is not running" in stopped.stderr
    finally:
        daemon.docker("rm", "-f", name)


def test_stats_no_stream_shows_usage_and_limit(daemon: Daemon) -> None:
    name = _unique("stats")
    _run_sleeper(daemon, name)
    try:
        table = daemon.docker("stats", "--no-stream", name, check=True).stdout.splitlines()
        assert "MEM USAGE / LIMIT" in table[0]
        assert table[1].split()[1] == name and "/" in table[1]
        assert "%" in table[1].split()[2]  # CPU %, computed by the CLI from our numbers
        usage = daemon.docker("stats", "--no-stream", "--format",
                              "{{.MemUsage}}|{{.CPUPerc}}|{{.PIDs}}", name,
                              check=True).stdout.strip()
        mem, cpu, pids = usage.split("|")
        used, limit = (part.strip() for part in mem.split("/"))
        assert used[0].isdigit() and limit[0].isdigit() and limit != "0B", usage
        assert cpu.endswith("%") and pids == "1", usage
    finally:
        daemon.docker("rm", "-f", name)


def test_stats_api_objects(daemon: Daemon) -> None:
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(str(daemon.socket))

    name = _unique("statsapi")
    container_id = _run_sleeper(daemon, name)
    try:
        connection = UnixConnection("localhost", timeout=10)
        connection.request("GET", f"/v1.45/containers/{name}/stats?stream=0")
        doc = json.loads(connection.getresponse().read())
        assert doc["id"] == container_id and doc["name"] == f"/{name}"
        assert doc["preread"] != "0001-01-01T00:00:00Z"
        assert doc["cpu_stats"]["system_cpu_usage"] > doc["precpu_stats"]["system_cpu_usage"]
        assert doc["cpu_stats"]["online_cpus"] >= 1
        assert doc["memory_stats"]["usage"] > 0 and doc["memory_stats"]["limit"] > 0
        assert doc["pids_stats"]["current"] == 1
        connection.close()
        # stream=1: one object per second, line by line, until the client leaves.
        connection = UnixConnection("localhost", timeout=10)
        connection.request("GET", f"/v1.45/containers/{name}/stats")
        response = connection.getresponse()
        first = json.loads(response.readline())
        second = json.loads(response.readline())
        assert second["precpu_stats"] == first["cpu_stats"] and second["preread"] == first["read"]
        connection.close()
    finally:
        daemon.docker("rm", "-f", name)


def test_update_changes_the_live_cgroup_and_the_record(daemon: Daemon) -> None:
    name = _unique("update")
    container_id = _run_sleeper(daemon, name)
    try:
        daemon.docker("update", "--memory", "64m", "--pids-limit", "50", "--cpu-shares",
                      "512", "--restart", "on-failure:3", name, check=True)
        memory = _cgroup_file(daemon, container_id, "memory", "memory.limit_in_bytes",
                              "memory.max")
        assert int(memory) == 64 << 20
        assert _cgroup_file(daemon, container_id, "pids", "pids.max", "pids.max") == "50"
        inspected = json.loads(daemon.docker("inspect", "-f", "{{json .HostConfig}}", name,
                                             check=True).stdout)
        assert inspected["Memory"] == 64 << 20 and inspected["PidsLimit"] == 50
        assert inspected["CpuShares"] == 512
        assert inspected["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        # The limits hold for the next start too (they are in the record).
        daemon.docker("restart", "-t", "1", name, check=True)
        memory = _cgroup_file(daemon, container_id, "memory", "memory.limit_in_bytes",
                              "memory.max")
        assert int(memory) == 64 << 20
        refused = daemon.docker("update", "--memory", "1m", name)
        assert refused.returncode != 0 and "Minimum memory limit" in refused.stderr
    finally:
        daemon.docker("rm", "-f", name)


def test_container_prune_removes_only_stopped_ones(daemon: Daemon) -> None:
    running, stopped = _unique("keep"), _unique("gone")
    _run_sleeper(daemon, running)
    stopped_id = daemon.docker("create", "--name", stopped, IMAGE, check=True).stdout.strip()
    labelled = _unique("labelled")
    daemon.docker("create", "--name", labelled, "--label", "keep=yes", IMAGE, check=True)
    try:
        out = daemon.docker("container", "prune", "-f", "--filter", "label!=keep",
                            check=True).stdout
        assert stopped_id in out and "Total reclaimed space" in out
        names = daemon.docker("ps", "-a", "--format", "{{.Names}}", check=True).stdout.split()
        assert running in names and labelled in names and stopped not in names
    finally:
        for name in (running, stopped, labelled):
            daemon.docker("rm", "-f", name)


def test_image_prune_removes_unused_images_only(daemon: Daemon) -> None:
    # multi:1.0 (another image) is the one pruned; the shared fixture is kept in use by a
    # container of ours, and the -a prune is limited to images without the fixture's label.
    fixture_id = daemon.docker("image", "inspect", "-f", "{{.Id}}", IMAGE,
                               check=True).stdout.strip()
    holder = _unique("holder")
    daemon.docker("create", "--name", holder, IMAGE, check=True)
    archive = str(FIXTURES / "fixture-multiarch-oci.tar")
    multi_id = "multi:1.0"
    try:
        daemon.docker("load", "-i", archive, check=True)
        multi_id = daemon.docker("image", "inspect", "-f", "{{.Id}}", "multi:1.0",
                                 check=True).stdout.strip()
        # Tagged, unused: a plain prune (dangling only) keeps it.
        daemon.docker("image", "prune", "-f", check=True)
        assert daemon.docker("image", "inspect", multi_id).returncode == 0
        # Its name moved to another image: now dangling, and a plain prune takes it.
        daemon.docker("tag", IMAGE, "multi:1.0", check=True)
        out = daemon.docker("image", "prune", "-f", check=True).stdout
        assert f"deleted: {multi_id}" in out and "Total reclaimed space" in out
        assert daemon.docker("image", "inspect", multi_id).returncode != 0
        daemon.docker("rmi", "multi:1.0", check=True)  # only untags the fixture
        # -a: every unused image (here: the ones without the fixture's label).
        daemon.docker("load", "-i", archive, check=True)
        out = daemon.docker("image", "prune", "-a", "-f", "--filter",
                            "label!=org.example.fixture", check=True).stdout
        assert "untagged: multi:1.0" in out and f"deleted: {multi_id}" in out
        assert daemon.docker("image", "inspect", "-f", "{{.Id}}", IMAGE,
                             check=True).stdout.strip() == fixture_id
    finally:
        daemon.docker("rm", "-f", holder)
        daemon.docker("rmi", "-f", "multi:1.0")
        daemon.docker("rmi", "-f", multi_id)


# -- the pure pieces (no daemon) -------------------------------------------------------------

def test_parse_ps_output_keeps_the_containers_rows_and_their_threads() -> None:
    from dockyard.engine.monitor import parse_ps_output

    output = ("USER PID %CPU COMMAND\n"
              "root 1 0.0 /sbin/init splash\n"
              "root 42 1.5 sleep 300\n"
              "root - 0.0 -\n"
              "root 43 0.0 sh -c  echo  hi\n"
              "root - 0.0 -\n")
    listing = parse_ps_output(output, [42, 43])
    assert listing["Titles"] == ["USER", "PID", "%CPU", "COMMAND"]
    assert listing["Processes"] == [["root", "42", "1.5", "sleep 300"],
                                    ["root", "-", "0.0", "-"],
                                    ["root", "43", "0.0", "sh -c echo hi"],
                                    ["root", "-", "0.0", "-"]]
    assert parse_ps_output(output, [])["Processes"] == []


def test_ps_args_naming_another_column_pid_are_refused() -> None:
    import pytest

    from dockyard.engine.errors import InvalidParameter
    from dockyard.engine.monitor import ContainerMonitor

    monitor = ContainerMonitor.__new__(ContainerMonitor)
    with pytest.raises(InvalidParameter, match='specifying "user=PID" is not allowed'):
        monitor.top("any", "-o pid, user=PID")


def test_update_rules_follow_moby() -> None:
    import pytest

    from dockyard.engine.errors import Conflict, InvalidParameter
    from dockyard.engine.monitor import _updated_host_config

    current = {"Memory": 0, "NanoCpus": 500_000_000, "RestartPolicy": {"Name": "no"}}
    new = _updated_host_config(current, {"Memory": 64 << 20, "PidsLimit": -1,
                                         "CpuShares": 0, "RestartPolicy": {"Name": "always"}})
    assert new["Memory"] == 64 << 20 and new["PidsLimit"] is None
    assert "CpuShares" not in new and new["RestartPolicy"]["Name"] == "always"
    with pytest.raises(Conflict, match="NanoCPUs has already been set"):
        _updated_host_config(current, {"CpuQuota": 50000})
    with pytest.raises(Conflict, match="smaller than already set memoryswap"):
        _updated_host_config({"Memory": 64 << 20, "MemorySwap": 128 << 20},
                             {"Memory": 256 << 20})
    with pytest.raises(InvalidParameter, match="Minimum memory limit"):
        _updated_host_config({}, {"Memory": 1 << 20})
    with pytest.raises(Conflict, match="AutoRemove"):
        _updated_host_config({"AutoRemove": True}, {"RestartPolicy": {"Name": "always"}})


def test_prune_filters() -> None:
    import time

    from dockyard.api._filters import Filters
    from dockyard.api.monitor import _until
    from dockyard.engine.monitor import matches_labels

    assert matches_labels({"a": "1"}, ["a"], []) and matches_labels({"a": "1"}, ["a=1"], [])
    assert not matches_labels({"a": "1"}, ["a=2"], [])
    assert not matches_labels({"a": "1"}, [], ["a"]) and matches_labels({}, [], ["a"])
    assert _until(Filters()) is None
    assert _until(Filters({"until": ["1700000000"]})) == 1700000000.0
    assert abs(_until(Filters({"until": ["1h30m"]})) - (time.time() - 5400)) < 5
    assert _until(Filters({"until": ["2023-11-14T22:13:20Z"]})) == 1700000000.0
