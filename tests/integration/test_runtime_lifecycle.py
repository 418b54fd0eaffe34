"""The container lifecycle through dockyard-runc's command line, as runc's callers use it."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import pytest

from dockyard.runtime.console import receive_master
from tests.integration.conftest import OCI


def wait_for_status(oci: OCI, container_id: str, status: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while oci.state(container_id)["status"] != status:
        assert time.monotonic() < deadline, f"never reached {status}"
        time.sleep(0.02)


def test_create_start_state_delete(oci: OCI, tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    container_id = oci.create(oci.config(["sleep", "30"]), "--pid-file", str(pid_file))
    state = oci.state(container_id)
    assert state["status"] == "created"
    assert state["pid"] == int(pid_file.read_text())
    assert state["ociVersion"] and state["bundle"]
    # The init waits before the user's program: it is still the runtime, not sleep.
    assert "sleep" not in Path(f"/proc/{state['pid']}/cmdline").read_text()
    oci("start", container_id, check=True)
    assert oci.state(container_id)["status"] == "running"
    assert "sleep" in Path(f"/proc/{state['pid']}/cmdline").read_text()
    wrong = oci("start", container_id)
    assert wrong.returncode == 1
    assert "cannot start an already running container" in wrong.stderr
    refused = oci("delete", container_id)
    assert refused.returncode == 1 and "not stopped: running" in refused.stderr
    oci("kill", container_id, "KILL", check=True)
    wait_for_status(oci, container_id, "stopped")
    assert oci.state(container_id)["pid"] == 0
    assert "cannot start a container that has stopped" in oci("start", container_id).stderr
    assert "container not running" in oci("kill", container_id).stderr
    (oci.root / container_id / "left-by-someone").write_text("x")  # removed all the same
    oci("delete", container_id, check=True)
    assert not (oci.root / container_id).exists()
    missing = oci("state", container_id)
    assert missing.returncode == 1 and "container does not exist" in missing.stderr


def test_delete_of_created_container_kills_init(oci: OCI) -> None:
    container_id = oci.create(oci.config(["true"]))
    pid = oci.state(container_id)["pid"]
    oci("delete", container_id, check=True)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and "Z" not in _proc_state(pid):
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "Z"


def test_delete_force_of_running_container(oci: OCI) -> None:
    container_id = oci.create(oci.config(["sleep", "30"]))
    oci("start", container_id, check=True)
    oci("delete", "--force", container_id, check=True)
    assert oci("state", container_id).returncode == 1
    assert oci("delete", "--force", "no-such-container").returncode == 0


def test_run_detach_and_kill_with_signal_name(oci: OCI) -> None:
    config = oci.config(["sh", "-c", "trap 'exit 3' TERM; while true; do sleep 0.1; done"])
    container_id = oci.new_id()
    bundle = oci.bundle(config, container_id)
    oci("run", "--detach", "--bundle", str(bundle), container_id, check=True)
    assert oci.state(container_id)["status"] == "running"
    oci("kill", container_id, "TERM", check=True)
    wait_for_status(oci, container_id, "stopped")
    oci("delete", container_id, check=True)


def test_exec_ps_pause_resume_list(oci: OCI) -> None:
    container_id = oci.create(oci.config(["sleep", "60"]))
    oci("start", container_id, check=True)
    result = oci("exec", container_id, "sh", "-c", "echo $$ in $(hostname); exit 4")
    assert result.returncode == 4
    assert result.stdout.split()[1:] == ["in", "dockyard"]
    result = oci("exec", "--env", "X=42", "--cwd", "/tmp", "--user", "1000:1000", container_id,
                 "sh", "-c", "echo $X $(pwd) $(id -u)")
    assert result.stdout.split() == ["42", "/tmp", "1000"], result.stderr
    process = {"args": ["sh", "-c", "echo from-process-json"], "cwd": "/", "env": ["PATH=/bin"],
               "user": {"uid": 0, "gid": 0}}
    process_file = oci.workdir / "process.json"
    process_file.write_text(json.dumps(process))
    assert oci("exec", "--process", str(process_file), container_id).stdout.strip() == \
        "from-process-json"
    missing = oci("exec", container_id, "no-such-binary")
    assert missing.returncode != 0
    assert 'exec: \\"no-such-binary\\": executable file not found in $PATH' in missing.stderr
    pids = json.loads(oci("ps", "--format", "json", container_id, check=True).stdout)
    assert oci.state(container_id)["pid"] in pids
    table = oci("ps", container_id, check=True).stdout
    assert "sleep 60" in table
    oci("pause", container_id, check=True)
    assert oci.state(container_id)["status"] == "paused"
    refused = oci("exec", container_id, "true")
    assert refused.returncode == 1 and "paused" in refused.stderr
    assert "container not running" in oci("pause", container_id).stderr
    oci("resume", container_id, check=True)
    assert oci.state(container_id)["status"] == "running"
    assert "container not paused" in oci("resume", container_id).stderr
    listed = json.loads(oci("list", "--format", "json").stdout)
    assert [d["id"] for d in listed] == [container_id]
    assert listed[0]["status"] == "running"
    table = oci("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1].split()[0] == container_id
    oci("delete", "--force", container_id, check=True)


def test_exec_detach_with_pid_file(oci: OCI, tmp_path: Path) -> None:
    container_id = oci.create(oci.config(["sleep", "60"]))
    oci("start", container_id, check=True)
    pid_file = tmp_path / "exec.pid"
    oci("exec", "--detach", "--pid-file", str(pid_file), container_id, "sleep", "50",
        check=True)
    pid = int(pid_file.read_text())
    assert "sleep" in Path(f"/proc/{pid}/cmdline").read_text()
    pids = json.loads(oci("ps", "--format", "json", container_id).stdout)
    assert pid in pids
    oci("kill", "--all", container_id, "KILL", check=True)
    wait_for_status(oci, container_id, "stopped")


def test_hooks_receive_state(oci: OCI, tmp_path: Path) -> None:
    log = tmp_path / "hooks.log"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\nread -r state; echo \"$1 $state\" >> {log}\n")
    hook.chmod(0o755)
    config = oci.config(["true"])
    config["hooks"] = {name: [{"path": str(hook), "args": ["hook.sh", name]}]
                       for name in ("prestart", "createRuntime", "createContainer",
                                    "poststart", "poststop")}
    container_id = oci.new_id()
    bundle = oci.bundle(config, container_id)
    result = oci("run", "--bundle", str(bundle), container_id)
    assert result.returncode == 0, result.stderr
    lines = log.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["prestart", "createRuntime",
                                                   "createContainer", "poststart", "poststop"]
    for line in lines:
        state = json.loads(line.split(" ", 1)[1])
        assert state["id"] == container_id
        assert state["bundle"] == str(bundle)
    assert json.loads(lines[0].split(" ", 1)[1])["status"] == "creating"
    assert json.loads(lines[-1].split(" ", 1)[1])["status"] == "stopped"


def test_failing_create_hook_leaves_nothing(oci: OCI, tmp_path: Path) -> None:
    config = oci.config(["true"])
    config["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    container_id = oci.new_id()
    bundle = oci.bundle(config, container_id)
    pid_file = tmp_path / "pid"
    result = oci("create", "--bundle", str(bundle), "--pid-file", str(pid_file), container_id)
    assert result.returncode == 1
    assert "createRuntime hook" in result.stderr
    assert not (oci.root / container_id).exists()
    assert not pid_file.exists()  # written while the init set up, then taken back


def test_console_socket_receives_pty_master(oci: OCI, tmp_path: Path) -> None:
    path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    config = oci.config(["sh", "-c", "tty; echo cols=$(stty size)"])
    config["process"]["terminal"] = True
    config["process"]["consoleSize"] = {"height": 40, "width": 100}
    container_id = oci.create(config, "--console-socket", path)
    connection, _ = listener.accept()
    master = receive_master(connection)
    oci("start", container_id, check=True)
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    text = output.decode()
    assert "/dev/pts/0" in text
    assert "cols=40 100" in text


def test_terminal_without_console_socket_is_refused_for_create(oci: OCI) -> None:
    config = oci.config(["true"])
    config["process"]["terminal"] = True
    container_id = oci.new_id()
    bundle = oci.bundle(config, container_id)
    result = oci("create", "--bundle", str(bundle), container_id)
    assert result.returncode == 1
    assert "console socket" in result.stderr


def test_id_in_use_and_bad_id(oci: OCI) -> None:
    container_id = oci.create(oci.config(["true"]))
    bundle = oci.bundle(oci.config(["true"]))
    again = oci("create", "--bundle", str(bundle), container_id)
    assert again.returncode == 1 and "exists" in again.stderr
    bad = oci("create", "--bundle", str(bundle), "../escape")
    assert bad.returncode == 1 and "invalid container id" in bad.stderr


@pytest.mark.parametrize(("change", "field"), [
    ({"process": {"args": "sh"}}, "process.args"),
    ({"linux": {"namespaces": [{"type": "mount"}, {"type": "bogus"}]}}, "linux.namespaces[1]"),
    ({"mounts": [{"destination": "relative", "type": "tmpfs"}]}, "mounts[0].destination"),
    ({"root": {"path": "/no/such/rootfs"}}, "root.path"),
    ({"mounts": [{"destination": "/x", "type": "tmpfs", "source": "tmpfs",
                  "options": ["bogus-option=1"]}]}, "mounts[0]"),
    ({"mounts": [{"destination": "/x", "type": "bind", "source": "/no/such/dir",
                  "options": ["rbind"]}]}, "mounts[0]"),
    ({"process": {"args": ["no-such-program"], "cwd": "/"}}, "executable file not found"),
])
def test_bad_config_is_refused_and_leaves_nothing(oci: OCI, change: dict, field: str) -> None:
    config = oci.config(["true"])
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    container_id = oci.new_id()
    bundle = oci.bundle(config, container_id)
    result = oci("create", "--bundle", str(bundle), container_id)
    assert result.returncode == 1
    assert field in result.stderr, result.stderr
    assert not (oci.root / container_id).exists()
    # No process of ours is left waiting on a FIFO for this container.
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert container_id.encode() not in environ


def test_log_file_json_format(oci: OCI, tmp_path: Path) -> None:
    log = tmp_path / "runtime.log"
    result = oci("--log", str(log), "--log-format", "json", "state", "missing")
    assert result.returncode == 1
    assert result.stderr.strip() == "container does not exist"
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == "container does not exist"


def test_spec_features_version(oci: OCI, tmp_path: Path) -> None:
    oci("spec", "--bundle", str(tmp_path), check=True)
    spec = json.loads((tmp_path / "config.json").read_text())
    assert spec["process"]["args"] == ["sh"]
    again = oci("spec", "--bundle", str(tmp_path))
    assert again.returncode == 1 and "exists" in again.stderr
    features = json.loads(oci("features", check=True).stdout)
    assert "createRuntime" in features["hooks"]
    assert features["linux"]["seccomp"]["enabled"] is True
    assert "dockyard-runc version" in oci("--version", check=True).stdout


def test_fifo_is_private(oci: OCI) -> None:
    container_id = oci.create(oci.config(["true"]))
    fifo = oci.root / container_id / "exec.fifo"
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    oci("start", container_id, check=True)
    assert not fifo.exists()


def test_delete_after_joined_namespace_is_gone(oci: OCI, tmp_path: Path) -> None:
    """podman removes a container's network namespace before `delete`: the saved config
    then names a path that no longer exists, and delete must still work (hooks included)."""
    import subprocess

    netns = f"dyt-{oci.prefix}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        marker = tmp_path / "poststop-ran"
        config = oci.config(["sleep", "30"])
        config["linux"]["namespaces"] = [
            ns for ns in config["linux"]["namespaces"] if ns["type"] != "network"
        ] + [{"type": "network", "path": f"/run/netns/{netns}"}]
        config["hooks"] = {"poststop": [{"path": "/bin/sh",
                                         "args": ["sh", "-c", f"touch {marker}"]}]}
        container_id = oci.new_id()
        bundle = oci.bundle(config, container_id)
        oci("run", "--detach", "--bundle", str(bundle), container_id, check=True)
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=True)
    oci("delete", "--force", container_id, check=True)
    assert marker.exists()
    assert oci("state", container_id).returncode == 1
