"""dockyard-runc's commands as library calls (runtime/cli.py's call, which the shim uses for
start, delete and kill instead of forking): the same effects and the same error messages as
the command line, and a refusal (NeedsProcess) for what must run as a process of its own."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from dockyard.runtime.cli import NeedsProcess, call
from tests.integration.conftest import OCI
from tests.integration.test_runtime_lifecycle import _proc_state, wait_for_status


def test_start_kill_delete_as_calls(oci: OCI) -> None:
    root = ["--root", str(oci.root)]
    container_id = oci.create(oci.config(["sleep", "30"]))
    assert call([*root, "start", container_id]) is None
    assert oci.state(container_id)["status"] == "running"
    assert call([*root, "start", container_id]) == \
        "cannot start an already running container"
    assert "not stopped: running" in (call([*root, "delete", container_id]) or "")
    assert call([*root, "kill", container_id, "KILL"]) is None
    wait_for_status(oci, container_id, "stopped")
    assert call([*root, "delete", container_id]) is None
    assert oci("state", container_id).returncode == 1
    assert call([*root, "delete", "--force", container_id]) is None
    assert call([*root, "start", container_id]) == "container does not exist"


def test_delete_force_of_a_running_container_as_a_call(oci: OCI) -> None:
    container_id = oci.create(oci.config(["sleep", "30"]))
    oci("start", container_id, check=True)
    pid = oci.state(container_id)["pid"]
    assert call(["--root", str(oci.root), "delete", "--force", container_id]) is None
    assert oci("state", container_id).returncode == 1
    deadline = time.monotonic() + 5
    while "Z" not in _proc_state(pid):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_containers_with_hooks_and_other_commands_need_a_process(oci: OCI,
                                                                  tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\necho \"$1\" >> {log}\n")
    hook.chmod(0o755)
    config = oci.config(["sleep", "30"])
    config["hooks"] = {"poststart": [{"path": str(hook), "args": ["hook.sh", "poststart"]}]}
    container_id = oci.create(config)
    root = ["--root", str(oci.root)]
    with pytest.raises(NeedsProcess):
        call([*root, "start", container_id])
    assert oci.state(container_id)["status"] == "created"  # nothing was done
    oci("start", container_id, check=True)
    assert log.read_text() == "poststart\n"
    with pytest.raises(NeedsProcess):
        call([*root, "state", container_id])
    with pytest.raises(NeedsProcess):
        call([*root, "--log", str(tmp_path / "log.json"), "kill", container_id])
    oci("delete", "--force", container_id, check=True)
