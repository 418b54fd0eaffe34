"""The real docker CLI (28) against dockyardd: the daily commands behave as with Docker."""

from __future__ import annotations

import json
import os
import time

from tests.compat.conftest import BIN, DOCKER, Daemon
from tests.host import run_in_terminal

IMAGE = "dockyard-fixture:1.0"


def test_version_and_info(daemon: Daemon) -> None:
    version = daemon.docker("version", "--format", "{{.Server.APIVersion}}", check=True)
    assert version.stdout.strip() == "1.45"
    info = json.loads(daemon.docker("info", "--format", "{{json .}}", check=True).stdout)
    assert info["Driver"] == "overlay2" and info["OSType"] == "linux"


def test_run_rm_prints_and_exits_with_the_containers_code(daemon: Daemon) -> None:
    result = daemon.docker("run", "--rm", IMAGE, check=True)
    assert result.stdout == "hello from fixture\n"
    failed = daemon.docker("run", "--rm", IMAGE, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
    assert daemon.docker("ps", "-aq").stdout == ""


def test_fixture_tree_as_docker_shows_it(daemon: Daemon) -> None:
    script = ("ls /data; stat -c %h /data/hard; readlink /data/link; ls /data/sub; "
              "ls /data/opaque; test -e /data/gone || echo no-gone; pwd; cat /app/hello.txt")
    out = daemon.docker("run", "--rm", IMAGE, "sh", "-c", script, check=True).stdout.split()
    assert out == ["a", "hard", "link", "opaque", "sub", "2", "/data/a", "c", "new", "no-gone",
                   "/app", "hello", "from", "a", "file"]


def test_exit_codes_for_engine_errors(daemon: Daemon) -> None:
    missing = daemon.docker("run", "--rm", IMAGE, "no-such-command")
    assert missing.returncode == 127, missing.stderr
    assert "executable file not found" in missing.stderr
    not_executable = daemon.docker("run", "--rm", IMAGE, "/app/hello.txt")
    assert not_executable.returncode == 126, not_executable.stderr
    no_image = daemon.docker("run", "--rm", "--pull", "never", "no-such-image:1")
    assert no_image.returncode == 125
    # An image that is not here is pulled: from Docker Hub, which the test daemons reach
    # only through a proxy on a closed local port (conftest.OFFLINE_ENV).
    hub = daemon.docker("run", "--rm", "no-such-image:1")
    assert hub.returncode == 125
    assert "Unable to find image 'no-such-image:1' locally" in hub.stderr
    assert 'Get "https://registry-1.docker.io/v2/": proxyconnect tcp: dial tcp 127.0.0.1:9' \
        in hub.stderr, hub.stderr


def test_detached_lifecycle_ps_logs_exec_stop_rm(daemon: Daemon) -> None:
    name = "lifecycle"
    daemon.docker("run", "-d", "--name", name, IMAGE, "sh", "-c",
                  "echo started; trap 'echo bye; exit 7' TERM; "
                  "while true; do sleep 0.1; done", check=True)
    try:
        listed = daemon.docker("ps", "--format", "{{.Names}} {{.Status}}", check=True).stdout
        assert listed.startswith(f"{name} Up")
        assert daemon.docker("exec", name, "sh", "-c", "exit 4").returncode == 4
        echoed = daemon.docker("exec", "-i", name, "cat", input="through stdin\n", check=True)
        assert echoed.stdout == "through stdin\n"
        state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.Config.Hostname}}", name,
                              check=True).stdout.split()
        assert state[0] == "running" and len(state[1]) == 12
        daemon.docker("stop", name, check=True)
        assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "7"
        assert daemon.docker("logs", name, check=True).stdout == "started\nbye\n"
        assert "Exited (7)" in daemon.docker("ps", "-a", "--filter", f"name={name}").stdout
    finally:
        daemon.docker("rm", "-f", name)
    assert daemon.docker("inspect", name).returncode == 1


def test_kill_pause_restart(daemon: Daemon) -> None:
    name = "signals"
    daemon.docker("run", "-d", "--name", name, IMAGE, "sleep", "30", check=True)
    try:
        daemon.docker("pause", name, check=True)
        assert daemon.docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip() == \
            "paused"
        daemon.docker("unpause", name, check=True)
        daemon.docker("restart", "-t", "1", name, check=True)
        assert daemon.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == \
            "true"
        daemon.docker("kill", name, check=True)
        assert daemon.docker("wait", name, check=True).stdout.strip() == "137"
    finally:
        daemon.docker("rm", "-f", name)


def test_image_commands(daemon: Daemon, tmp_path: object) -> None:
    inspect = json.loads(daemon.docker("image", "inspect", IMAGE, check=True).stdout)[0]
    assert inspect["Config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert inspect["Config"]["Labels"]["org.example.fixture"] == "dockyard"
    daemon.docker("tag", IMAGE, "example.com/copy:v1", check=True)
    assert "example.com/copy" in daemon.docker("images", check=True).stdout
    assert "Untagged: example.com/copy:v1" in daemon.docker("rmi", "example.com/copy:v1",
                                                           check=True).stdout
    archive = f"{tmp_path}/saved.tar"
    daemon.docker("save", "-o", archive, IMAGE, check=True)
    assert os.path.getsize(archive) > 1_000_000
    assert "Loaded image: dockyard-fixture:1.0" in daemon.docker("load", "-i", archive,
                                                                check=True).stdout


def test_run_with_a_terminal(daemon: Daemon) -> None:
    session = run_in_terminal([DOCKER, "run", "--rm", "-it", IMAGE, "sh", "-c",
                               "tty; stty size; exit 5"],
                              env={**os.environ, "DOCKER_HOST": daemon.host}, timeout=30)
    assert session.returncode == 5, session.stdout
    assert "/dev/pts/0" in session.stdout


def test_docker_py(daemon: Daemon) -> None:
    import docker

    client = docker.DockerClient(base_url=daemon.host)
    try:
        assert client.ping()
        output = client.containers.run(IMAGE, ["sh", "-c", "echo via docker-py"], remove=True)
        assert output == b"via docker-py\n"
        container = client.containers.run(IMAGE, ["sleep", "30"], detach=True, name="pyapi")
        try:
            exit_code, out = container.exec_run(["sh", "-c", "echo $HOME; exit 2"])
            assert (exit_code, out) == (2, b"/root\n")
            container.reload()
            assert container.status == "running"
            assert IMAGE in [t for image in client.images.list() for t in image.tags]
        finally:
            container.remove(force=True)
    finally:
        client.close()


def test_dockyard_cli(daemon: Daemon) -> None:
    result = daemon.dockyard("run", "--rm", IMAGE, "sh", "-c", "echo from dockyard; exit 6")
    assert (result.returncode, result.stdout) == (6, "from dockyard\n")
    assert "dockyard-fixture" in daemon.dockyard("images", check=True).stdout


def test_daemon_restart_keeps_containers_running(daemon: Daemon) -> None:
    name = "survivor"
    daemon.docker("run", "-d", "--name", name, IMAGE, "sh", "-c",
                  "trap 'exit 9' TERM; while true; do sleep 0.1; done", check=True)
    try:
        pid = daemon.docker("inspect", "-f", "{{.State.Pid}}", name, check=True).stdout.strip()
        daemon.stop(kill=True)
        assert os.path.exists(f"/proc/{pid}")
        daemon.start()
        state = daemon.docker("inspect", "-f", "{{.State.Status}} {{.State.Pid}}", name,
                              check=True).stdout.split()
        assert state == ["running", pid]
        daemon.docker("stop", name, check=True)
        assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "9"
    finally:
        daemon.docker("rm", "-f", name)


def test_exit_while_daemon_is_down_is_recorded(daemon: Daemon) -> None:
    name = "quitter"
    daemon.docker("run", "-d", "--name", name, IMAGE, "sh", "-c", "sleep 1; exit 4",
                  check=True)
    try:
        daemon.stop()
        time.sleep(1.5)
        daemon.start()
        deadline = time.monotonic() + 10
        while daemon.docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() != \
                "false":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert daemon.docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout.strip() == "4"
    finally:
        daemon.docker("rm", "-f", name)


def test_stdin_logs_follow_attach_events(daemon: Daemon) -> None:
    piped = daemon.docker("run", "--rm", "-i", IMAGE, "cat", input="piped in\n", check=True)
    assert piped.stdout == "piped in\n"
    daemon.docker("run", "-d", "--name", "follow", IMAGE, "sh", "-c",
                  "for i in 1 2 3; do echo line$i; sleep 0.2; done", check=True)
    try:
        followed = daemon.docker("logs", "-f", "follow", check=True)
        assert followed.stdout == "line1\nline2\nline3\n"
        now = str(int(time.time()) + 1)
        events = daemon.docker("events", "--since", "0", "--until", now, "--filter",
                               "container=follow", "--format", "{{.Action}}", check=True)
        assert events.stdout.split()[:3] == ["create", "start", "die"]
    finally:
        daemon.docker("rm", "-f", "follow")
    daemon.docker("run", "-d", "--name", "attached", IMAGE, "sh", "-c",
                  "sleep 0.5; echo attached-out", check=True)
    try:
        assert daemon.docker("attach", "attached", check=True).stdout == "attached-out\n"
    finally:
        daemon.docker("rm", "-f", "attached")


def test_dockyard_cli_terminal_session(daemon: Daemon) -> None:
    session = run_in_terminal([str(BIN / "dockyard"), "-H", daemon.host, "run", "--rm", "-it",
                               IMAGE, "sh", "-c", "tty; stty size; exit 4"], timeout=30)
    assert session.returncode == 4, session.stdout
    assert "/dev/pts/0" in session.stdout


def test_bind_and_tmpfs_mounts(daemon: Daemon, tmp_path: object) -> None:
    host = f"{tmp_path}/shared"
    os.makedirs(host)
    with open(f"{host}/file", "w") as f:
        f.write("from the host\n")
    readonly = daemon.docker("run", "--rm", "-v", f"{host}:/host:ro", IMAGE, "sh", "-c",
                             "cat /host/file; touch /host/x 2>/dev/null || echo refused")
    assert readonly.stdout == "from the host\nrefused\n", readonly.stderr
    created = f"{tmp_path}/made/by/run"
    daemon.docker("run", "--rm", "-v", f"{created}:/out", IMAGE, "sh", "-c",
                  "echo written > /out/result", check=True)
    with open(f"{created}/result") as f:
        assert f.read() == "written\n"
    tmpfs = daemon.docker("run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=1048576",
                          IMAGE, "sh", "-c", "grep ' /t ' /proc/mounts | cut -d' ' -f3")
    assert tmpfs.stdout.strip() == "tmpfs", tmpfs.stderr
    missing = daemon.docker("run", "--rm", "--mount",
                            "type=bind,source=/no/such/dir,target=/x", IMAGE, "true")
    assert missing.returncode == 125
    assert "bind source path does not exist: /no/such/dir" in missing.stderr
    daemon.docker("create", "--name", "withmounts", "-v", f"{host}:/host:ro", IMAGE, "true",
                  check=True)
    try:
        mounts = json.loads(daemon.docker("inspect", "-f", "{{json .Mounts}}",
                                          "withmounts", check=True).stdout)
        assert mounts == [{"Type": "bind", "Source": host, "Destination": "/host", "Mode": "ro",
                           "RW": False, "Propagation": "rprivate"}]
    finally:
        daemon.docker("rm", "-f", "withmounts")


def test_init_runs_as_pid_1(daemon: Daemon) -> None:
    result = daemon.docker("run", "--rm", "--init", IMAGE, "sh", "-c",
                           "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$", check=True)
    first, second = result.stdout.splitlines()
    assert first.startswith("/sbin/docker-init -- sh")
    assert second != "1"
