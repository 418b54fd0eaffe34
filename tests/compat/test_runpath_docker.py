"""`docker run --rm` (the docker CLI against dockyardd, default bridge attached) leaves
nothing of the container once the CLI returns: no record, no mount, no network namespace,
no cgroup, no endpoint; and a --rm container's writes and exit code still behave (its
overlay is mounted volatile, and it is removed on the exit path itself)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.compat.conftest import Daemon

IMAGE = "dockyard-fixture:1.0"


def _cgroup_dirs(parent: str) -> list[str]:
    found = []
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        directory = hierarchy / parent.strip("/")
        if directory.is_dir():
            found += [str(p) for p in directory.iterdir() if p.is_dir()]
    return found


def _left_of(daemon: Daemon, container_id: str) -> list[str]:
    left = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
            if container_id in line]
    left += [d for d in _cgroup_dirs(daemon.cgroup_parent) if container_id in d]
    left += [str(p) for p in (daemon.exec_root / "netns").glob(f"{container_id}*")]
    left += [str(p) for p in (daemon.data_root / "containers").iterdir()
             if container_id in p.name and not p.name.startswith(".removed-")]
    for network in (daemon.data_root / "network").glob("*.json"):
        if container_id in json.loads(network.read_text()).get("Containers", {}):
            left.append(f"endpoint in {network.name}")
    return left


def test_run_rm_leaves_nothing_when_it_returns(daemon: Daemon) -> None:
    for code in (0, 3):
        result = daemon.docker("run", "--rm", "--cidfile", str(daemon.root / f"cid{code}"),
                               IMAGE, "sh", "-c", f"echo hi > /written; cat /written; exit {code}")
        assert result.returncode == code, result.stderr
        assert result.stdout == "hi\n"
        container_id = (daemon.root / f"cid{code}").read_text().strip()
        (daemon.root / f"cid{code}").unlink()
        assert len(container_id) == 64
        assert _left_of(daemon, container_id) == []
        assert daemon.docker("inspect", container_id).returncode != 0


def test_run_rm_detached_then_stopped(daemon: Daemon) -> None:
    container_id = daemon.docker("run", "-d", "--rm", IMAGE, "sleep", "30",
                                 check=True).stdout.strip()
    inspect = json.loads(daemon.docker("inspect", container_id, check=True).stdout)[0]
    assert inspect["State"]["Running"] and inspect["NetworkSettings"]["IPAddress"]
    daemon.docker("stop", "-t", "0", container_id, check=True)
    # `stop` returns once the container has stopped; the removal follows it.
    deadline = time.monotonic() + 10
    while _left_of(daemon, container_id):
        assert time.monotonic() < deadline, _left_of(daemon, container_id)
        time.sleep(0.05)
    assert daemon.docker("inspect", container_id).returncode != 0


def test_restart_of_a_run_rm_container(daemon: Daemon) -> None:
    # As dockerd: the restart's stop does not remove it; a later stop does.
    container_id = daemon.docker("run", "-d", "--rm", IMAGE, "sleep", "30",
                                 check=True).stdout.strip()
    daemon.docker("restart", "-t", "0", container_id, check=True)
    state = json.loads(daemon.docker("inspect", container_id, check=True).stdout)[0]["State"]
    assert state["Running"] and state["Status"] == "running"
    daemon.docker("stop", "-t", "0", container_id, check=True)
    deadline = time.monotonic() + 10
    while _left_of(daemon, container_id):
        assert time.monotonic() < deadline, _left_of(daemon, container_id)
        time.sleep(0.05)
