"""`dockyard` against a real dockerd 20.10 (API 1.41), side by side with the docker CLI.

A private dockerd runs for the session on its own socket, data root and exec root, with no
bridge, no firewall rule and the vfs storage driver; the busybox image is imported through
`dockyard import`. Every check runs the same command line through both CLIs against that
daemon and compares exit codes and the output that does not depend on IDs or time.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import termios
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.host import (
    mounts_under,
    ping,
    processes_using,
    remove_cgroups,
    unmount_all_under,
    wait_until,
)

DOCKERD = "/usr/sbin/dockerd"
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
DOCKYARD = str(Path(sys.executable).parent / "dockyard")
IMAGE = "busybox:cli-test"
# Made on the host by dockerd/containerd whatever their options say; removed at the end if
# this session made them.
HOST_PATHS = [Path("/run/containerd"), Path("/run/docker")]


# -- the daemon -------------------------------------------------------------------------------


class CLIs:
    """Runs a command line through dockyard or docker, against the session's dockerd."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.sock = home / "d.sock"
        self.env = {**os.environ, "DOCKYARD_HOST": f"unix://{self.sock}",
                    "DOCKER_HOST": f"unix://{self.sock}",
                    "DOCKER_CONFIG": str(home / "client-config")}

    def argv(self, cli: str, args: tuple[str, ...]) -> list[str]:
        return [DOCKYARD if cli == "dockyard" else DOCKER, *args]

    def run(self, cli: str, *args: str, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(cli, args), env=self.env, input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def dy(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run("dockyard", *args, **kwargs)  # type: ignore[arg-type]

    def dk(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return self.run("docker", *args, **kwargs)  # type: ignore[arg-type]

    def both(self, *args: str, input: str | None = None
             ) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
        return self.dy(*args, input=input), self.dk(*args, input=input)

    def in_terminal(self, cli: str, *args: str, keys: bytes = b"",
                    steps: list[tuple[bytes, Callable[[int, int], None]]] | None = None,
                    timeout: float = 30) -> tuple[int, str]:
        """Runs with a pty (33 rows, 111 columns) as stdin/stdout/stderr. keys are typed
        at the first prompt; each step (text, action) runs action(master fd, pid) once
        text has appeared in the output."""
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        process = subprocess.Popen(self.argv(cli, args), stdin=slave, stdout=slave,
                                   stderr=slave, env=self.env, start_new_session=True)
        os.close(slave)
        pending = list(steps or [])
        if keys:
            pending.insert(0, (b"#", lambda fd, _pid: type_keys(fd, keys)))
        output = bytearray()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if pending and pending[0][0] in output:
                    pending.pop(0)[1](master, process.pid)
                    continue
                if select.select([master], [], [], 0.05)[0]:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:
                        chunk = b""
                    if not chunk:
                        break
                    output += chunk
                elif process.poll() is not None:
                    break
            else:
                process.kill()
            status = process.wait(timeout=10)
        finally:
            os.close(master)
        return status, output.decode(errors="replace")


def type_keys(fd: int, keys: bytes) -> None:
    os.write(fd, keys)


def same_error(ours: str, theirs: str) -> bool:
    return ours.replace("dockyard", "docker").strip() == theirs.strip()


@pytest.fixture(scope="session")
def cli(tmp_path_factory: pytest.TempPathFactory,
        busybox_bundle_template: Path) -> Iterator[CLIs]:
    require_root()
    for tool in (DOCKERD, DOCKER, DOCKYARD, "containerd"):
        assert shutil.which(tool) or Path(tool).exists(), f"missing {tool}"
    home = Path(tmp_path_factory.mktemp("cli-dockerd"))
    existed = {path for path in HOST_PATHS if path.exists()}
    cgroup_parent = f"/dockyard-test/cli-{uuid.uuid4().hex[:8]}"
    argv = [DOCKERD, "-H", f"unix://{home}/d.sock", "--data-root", str(home / "data"),
            "--exec-root", str(home / "exec"), "--pidfile", str(home / "d.pid"),
            "--storage-driver", "vfs", "--exec-opt", "native.cgroupdriver=cgroupfs",
            "--cgroup-parent", cgroup_parent, "--bridge", "none", "--iptables=false",
            "--ip6tables=false", "--ip-forward=false", "--ip-masq=false"]
    with open(home / "dockerd.log", "wb") as log:
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    clis = CLIs(home)
    try:
        assert wait_until(lambda: daemon.poll() is not None or ping(clis.sock), 30)
        assert daemon.poll() is None, (home / "dockerd.log").read_text()[-3000:]
        rootfs = busybox_bundle_template / "rootfs"
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imported = subprocess.run([DOCKYARD, "import", "--change", 'CMD ["sh"]', "-", IMAGE],
                                  stdin=tar.stdout, env=clis.env, capture_output=True,
                                  text=True, timeout=60, check=False)
        tar.stdout.close()
        assert tar.wait() == 0 and imported.returncode == 0, imported.stderr
        assert imported.stdout.startswith("sha256:")
        yield clis
    finally:
        if daemon.poll() is None:
            left = clis.dk("ps", "-aq").stdout.split()
            if left:
                clis.dk("rm", "-f", *left)
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        # containerd and its shims name the exec root on their command lines.
        wait_until(lambda: not processes_using(home), 15)
        stray = processes_using(home)
        for pid, _ in stray:
            os.kill(pid, signal.SIGKILL)
        unmount_all_under(home)
        remove_cgroups(cgroup_parent)
        shutil.rmtree(home, ignore_errors=True)
        for path in HOST_PATHS:
            if path not in existed and path.exists():
                shutil.rmtree(path, ignore_errors=True)
        assert not stray, f"processes outlived dockerd: {stray}"
        assert not mounts_under(home)


def name() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


# -- run --------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["echo", "hello"],
    ["sh", "-c", "echo out; echo err >&2; exit 3"],
    ["nosuch"],
    ["/etc/passwd"],
])
def test_run_exit_codes_and_output(cli: CLIs, command: list[str]) -> None:
    ours, theirs = cli.both("run", "--rm", IMAGE, *command)
    assert ours.returncode == theirs.returncode, (ours.stderr, theirs.stderr)
    assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode)
    if theirs.returncode >= 125:
        assert same_error(ours.stderr, theirs.stderr), (ours.stderr, theirs.stderr)
    else:
        assert ours.stderr == theirs.stderr


def test_run_with_stdin_half_closes(cli: CLIs) -> None:
    ours, theirs = cli.both("run", "--rm", "-i", IMAGE, "sh", "-c", "wc -l; echo done",
                            input="a\nb\nc\n")
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == \
        (0, "3\ndone\n")


def test_run_flags_reach_the_container(cli: CLIs) -> None:
    args = ("run", "--rm", "-e", "A=1", "-w", "/tmp", "-u", "1:2", "--hostname", "hh",
            "--entrypoint", "sh", "--read-only", "--tmpfs", "/scratch", "--cap-drop", "ALL",
            IMAGE, "-c", "echo $A $(pwd) $(id -u):$(id -g) $(hostname); "
                         "touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs")
    ours, theirs = cli.both(*args)
    assert ours.stdout == theirs.stdout == "1 /tmp 1:2 hh\nro\ntmpfs\n"
    assert ours.returncode == theirs.returncode == 0


def test_run_unknown_image_and_flag(cli: CLIs) -> None:
    ours, theirs = cli.both("run", "--rm", "--pull", "never", "nosuchimage:x")
    assert ours.returncode == theirs.returncode == 125
    assert same_error(ours.stderr, theirs.stderr)
    ours, theirs = cli.both("run", "--bogus", IMAGE)
    assert ours.returncode == theirs.returncode == 125
    assert same_error(ours.stderr, theirs.stderr)
    ours, theirs = cli.both("rm")
    assert ours.returncode == theirs.returncode == 1
    assert same_error(ours.stderr, theirs.stderr)


# -- a detached container's life --------------------------------------------------------------

def test_detached_container_lifecycle(cli: CLIs) -> None:
    ours_name, theirs_name = name(), name()
    script = "trap 'echo got-term; exit 7' TERM; echo started; while :; do sleep 0.1; done"
    ours = cli.dy("run", "-d", "--name", ours_name, "-l", "k=v", IMAGE, "sh", "-c", script)
    theirs = cli.dk("run", "-d", "--name", theirs_name, "-l", "k=v", IMAGE, "sh", "-c", script)
    assert ours.returncode == theirs.returncode == 0
    assert len(ours.stdout.strip()) == 64
    try:
        fmt = "{{.Image}} {{.Command}} {{.State}} {{.Label \"k\"}} {{.Names}}"
        for target in (ours_name, theirs_name):
            assert wait_until(lambda t=target: "started" in cli.dy("logs", t).stdout, 10)
            mine = cli.dy("ps", "--filter", f"name={target}", "--format", fmt)
            docker = cli.dk("ps", "--filter", f"name={target}", "--format", fmt)
            assert mine.stdout == docker.stdout != ""
            assert cli.dy("ps", "-q", "--filter", f"name={target}").stdout == \
                cli.dk("ps", "-q", "--filter", f"name={target}").stdout
        # The columns' names (their widths follow the rows: "Less than a second ago" in one
        # listing may be "1 second ago" in the next).
        header = cli.dy("ps", "--filter", f"name={ours_name}").stdout.splitlines()[0]
        assert header.split() == \
            cli.dk("ps", "--filter", f"name={ours_name}").stdout.splitlines()[0].split()

        for args in (("exec", "{}", "sh", "-c", "echo in-exec; exit 4"),
                     ("exec", "-e", "X=y", "-w", "/tmp", "-u", "1", "{}", "sh", "-c",
                      "echo $X $(pwd) $(id -u)"),
                     ("exec", "{}", "nosuch"),
                     ("logs", "--tail", "1", "{}"),
                     ("top", "{}"),
                     ("inspect", "-f", "{{.State.Status}} {{.Config.Labels}} {{json "
                      ".Config.Cmd}}", "{}")):
            mine = cli.dy(*[a.replace("{}", ours_name) for a in args])
            docker = cli.dk(*[a.replace("{}", ours_name) for a in args])
            assert mine.returncode == docker.returncode, (args, mine.stderr, docker.stderr)
            if args[0] == "top":
                assert mine.stdout.splitlines()[0] == docker.stdout.splitlines()[0]
            else:
                assert (mine.stdout, mine.stderr) == (docker.stdout, docker.stderr), args
        piped = cli.dy("exec", "-i", ours_name, "cat", input="through stdin\n")
        assert (piped.returncode, piped.stdout) == (0, "through stdin\n")

        for cli_name, target in (("dockyard", ours_name), ("docker", theirs_name)):
            assert cli.run(cli_name, "pause", target).stdout == f"{target}\n"
        fmt = "{{.Names}} {{.State}}"
        assert cli.dy("ps", "--filter", f"name={ours_name}", "--format", fmt).stdout == \
            f"{ours_name} paused\n"
        for cli_name, target in (("dockyard", ours_name), ("docker", theirs_name)):
            assert cli.run(cli_name, "unpause", target).returncode == 0
            stopped = cli.run(cli_name, "stop", "-t", "5", target)
            assert stopped.stdout == f"{target}\n"
            waited = cli.run(cli_name, "wait", target)
            assert waited.stdout == "7\n"
        assert cli.dy("logs", ours_name).stdout == cli.dk("logs", theirs_name).stdout == \
            "started\ngot-term\n"
        mine, docker = cli.dy("rm", ours_name, "nosuch"), cli.dk("rm", theirs_name, "nosuch")
        assert (mine.returncode, mine.stdout.replace(ours_name, "N")) == \
            (docker.returncode, docker.stdout.replace(theirs_name, "N")) == (1, "N\n")
        assert mine.stderr == docker.stderr
    finally:
        cli.dk("rm", "-f", ours_name, theirs_name)


def test_kill_restart_and_rm_force(cli: CLIs) -> None:
    target = name()
    assert cli.dy("run", "-d", "--name", target, IMAGE, "sleep", "300").returncode == 0
    try:
        assert cli.dy("restart", "-t", "0", target).stdout == f"{target}\n"
        assert cli.dy("inspect", "-f", "{{.RestartCount}} {{.State.Running}}",
                      target).stdout == "0 true\n"
        assert cli.dy("kill", "-s", "KILL", target).stdout == f"{target}\n"
        assert cli.dy("wait", target).stdout == "137\n"
        mine, docker = cli.both("kill", target)
        assert mine.returncode == docker.returncode == 1
        assert mine.stderr == docker.stderr
        assert cli.dy("start", target).stdout == f"{target}\n"
        assert cli.dy("rm", "-f", target).stdout == f"{target}\n"
        assert cli.dy("ps", "-aq", "--filter", f"name={target}").stdout == ""
    finally:
        cli.dk("rm", "-f", target)


# -- terminal sessions ------------------------------------------------------------------------

def test_run_with_a_terminal_follows_its_size(cli: CLIs) -> None:
    def resize(fd: int, pid: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 44, 122, 0, 0))
        os.kill(pid, signal.SIGWINCH)
        time.sleep(0.3)
        os.write(fd, b"stty size; exit 6\r")

    for cli_name in ("dockyard", "docker"):
        # dockerd 20.10 (API 1.41) ignores HostConfig.ConsoleSize: the CLI resizes after
        # start, so the shell may see 0x0 (stty fails) until that call lands.
        status, output = cli.in_terminal(
            cli_name, "run", "--rm", "-it", IMAGE, "sh",
            keys=b"until stty size >/dev/null 2>&1; do sleep 0.05; done; tty; stty size\r",
            steps=[(b"33 111", resize)])
        assert status == 6, output
        assert "/dev/pts/0" in output and "44 122" in output, output


def test_interactive_shell_in_a_terminal(cli: CLIs) -> None:
    results = {}
    for cli_name in ("dockyard", "docker"):
        status, output = cli.in_terminal(cli_name, "run", "--rm", "-it", IMAGE, "sh",
                                         keys=b"echo typed-$((6*7)); exit 3\r")
        results[cli_name] = status
        assert "typed-42" in output, output
    assert results == {"dockyard": 3, "docker": 3}


def test_exec_with_a_terminal(cli: CLIs) -> None:
    target = name()
    assert cli.dy("run", "-d", "--name", target, IMAGE, "sleep", "300").returncode == 0
    try:
        for cli_name in ("dockyard", "docker"):
            status, output = cli.in_terminal(cli_name, "exec", "-it", target, "sh", "-c",
                                             "tty; exit 5")
            assert status == 5 and "/dev/pts/" in output, output
        mine = cli.dy("exec", "-it", target, "true")      # stdin is not a terminal here
        docker = cli.dk("exec", "-it", target, "true")
        assert mine.returncode == docker.returncode == 1
        assert same_error(mine.stderr, docker.stderr)
    finally:
        cli.dk("rm", "-f", target)


def test_attach_and_start_interactive(cli: CLIs) -> None:
    results = {}
    for cli_name in ("dockyard", "docker"):
        target = name()
        assert cli.run(cli_name, "run", "-dit", "--name", target, IMAGE, "sh").returncode == 0
        try:
            attached = cli.in_terminal(cli_name, "attach", target,
                                       steps=[(b"", lambda fd, _: type_keys(
                                           fd, b"echo at$((1+1)); exit 4\r"))])
            restarted = cli.in_terminal(cli_name, "start", "-ai", target,
                                        keys=b"echo again; exit 5\r")
            results[cli_name] = (attached[0], "at2" in attached[1], restarted[0],
                                 "again" in restarted[1])
        finally:
            cli.dk("rm", "-f", target)
    assert results["dockyard"] == results["docker"] == (4, True, 5, True)


def test_logs_follow_until_exit(cli: CLIs) -> None:
    target = name()
    assert cli.dy("run", "-d", "--name", target, IMAGE, "sh", "-c",
                  "echo one; sleep 1; echo two >&2").returncode == 0
    try:
        followed = cli.dy("logs", "-f", target, timeout=20)
        assert (followed.returncode, followed.stdout, followed.stderr) == (0, "one\n", "two\n")
        mine, docker = cli.both("logs", "--tail", "1", "-t", target)
        assert mine.stdout == docker.stdout and mine.stderr == docker.stderr
    finally:
        cli.dk("rm", "-f", target)


# -- files ------------------------------------------------------------------------------------

def test_cp_both_ways_and_diff(cli: CLIs, tmp_path: Path) -> None:
    target = name()
    assert cli.dy("run", "-d", "--name", target, IMAGE, "sleep", "300").returncode == 0
    try:
        source = tmp_path / "src"
        (source / "sub").mkdir(parents=True)
        (source / "a.txt").write_text("alpha\n")
        (source / "sub" / "b.txt").write_text("beta\n")
        assert cli.dy("cp", str(source / "a.txt"), f"{target}:/tmp/renamed.txt").returncode == 0
        assert cli.dy("cp", str(source), f"{target}:/tmp/").returncode == 0
        assert cli.dy("exec", target, "cat", "/tmp/renamed.txt", "/tmp/src/sub/b.txt"
                      ).stdout == "alpha\nbeta\n"
        for cli_name in ("dockyard", "docker"):
            out = tmp_path / cli_name
            out.mkdir()
            assert cli.run(cli_name, "cp", f"{target}:/tmp/src", str(out)).returncode == 0
            assert cli.run(cli_name, "cp", f"{target}:/tmp/renamed.txt",
                           str(out / "file.txt")).returncode == 0
            assert (out / "src" / "sub" / "b.txt").read_text() == "beta\n"
            assert (out / "file.txt").read_text() == "alpha\n"
        missing = cli.both("cp", f"{target}:/nonexistent", str(tmp_path))
        assert missing[0].returncode == missing[1].returncode == 1
        mine, docker = cli.both("diff", target)
        assert (mine.returncode, sorted(mine.stdout.splitlines())) == \
            (docker.returncode, sorted(docker.stdout.splitlines()))
        assert "A /tmp/renamed.txt" in mine.stdout
        exported = tmp_path / "export.tar"
        assert cli.dy("export", "-o", str(exported), target).returncode == 0
        with tarfile.open(exported) as archive:
            assert "tmp/renamed.txt" in archive.getnames()
    finally:
        cli.dk("rm", "-f", target)


# -- images -----------------------------------------------------------------------------------

def test_images_tag_rmi_save_load(cli: CLIs, tmp_path: Path) -> None:
    tag = f"cli-tag-{uuid.uuid4().hex[:6]}:v1"
    assert cli.dy("tag", IMAGE, tag).returncode == 0
    try:
        for args in (("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}"),
                     ("images", "-q"), ("images", "--no-trunc", "-q", IMAGE),
                     ("image", "ls", "--filter", f"reference={tag}"),
                     ("images", "--digests", tag.split(":")[0]),
                     ("history", "--format", "{{.ID}} {{.CreatedBy}} {{.Size}} {{.Comment}}",
                      tag),
                     ("image", "inspect", "-f", "{{.Id}} {{.RepoTags}} {{.Config.Cmd}}",
                      tag),
                     ("inspect", "--type", "image", "-f", "{{.Os}}", tag)):
            for _ in range(3):   # "N seconds ago" may tick between the two calls
                mine, docker = cli.both(*args)
                if mine.stdout == docker.stdout:
                    break
            assert (mine.returncode, mine.stdout) == (docker.returncode, docker.stdout), args
        archive = tmp_path / "saved.tar"
        assert cli.dy("save", "-o", str(archive), tag).returncode == 0
        with tarfile.open(archive) as saved:
            assert "manifest.json" in saved.getnames()
        removed = cli.dy("rmi", tag)
        assert (removed.returncode, removed.stdout) == (0, f"Untagged: {tag}\n")
        loaded = cli.dy("load", "-i", str(archive))
        assert (loaded.returncode, loaded.stdout) == (0, f"Loaded image: {tag}\n")
        mine, docker = cli.both("rmi", "nosuch:tag")
        assert (mine.returncode, mine.stderr) == (docker.returncode, docker.stderr)
        mine, docker = cli.both("inspect", "nosuch")
        assert (mine.returncode, mine.stdout, mine.stderr) == \
            (docker.returncode, docker.stdout, docker.stderr)
    finally:
        cli.dk("rmi", tag)


def test_commit_and_image_inspect_json(cli: CLIs) -> None:
    target = name()
    repo = f"cli-commit-{uuid.uuid4().hex[:6]}"
    assert cli.dy("run", "--name", target, IMAGE, "sh", "-c", "echo x > /made").returncode == 0
    try:
        committed = cli.dy("commit", "-c", "ENV A=b", "-m", "msg", target, f"{repo}:1")
        assert committed.returncode == 0 and committed.stdout.startswith("sha256:")
        mine, docker = cli.both("image", "inspect", f"{repo}:1")
        assert mine.stdout == docker.stdout and mine.returncode == 0
        ran = cli.dy("run", "--rm", f"{repo}:1", "sh", "-c", "cat /made; echo $A")
        assert ran.stdout == "x\nb\n"
        mine, docker = cli.both("inspect", target)
        assert mine.stdout == docker.stdout
    finally:
        cli.dk("rm", "-f", target)
        cli.dk("rmi", f"{repo}:1")


# -- system -----------------------------------------------------------------------------------

def test_version_info_df_events(cli: CLIs) -> None:
    for args in (("version", "--format", "{{.Server.Version}} {{.Server.Os}}"),
                 ("info", "--format", "{{.Driver}} {{.NCPU}} {{json .Plugins.Volume}}"),
                 ("system", "df", "--format", "{{.Type}} {{.TotalCount}}")):
        mine, docker = cli.both(*args)
        assert (mine.returncode, mine.stdout) == (docker.returncode, docker.stdout), args
    version = cli.dy("version")
    assert "API version:       1.41 (downgraded from 1.45)" in version.stdout
    assert " Engine:\n  Version:          20.10" in version.stdout
    info = cli.dy("info")
    assert " Storage Driver: vfs\n" in info.stdout
    assert info.stdout.split("Server:")[1].splitlines()[:6] == \
        cli.dk("info").stdout.split("Server:")[1].splitlines()[:6]
    start = str(int(time.time()) - 1)
    target = name()
    assert cli.dy("run", "--rm", "--name", target, IMAGE, "true").returncode == 0
    until = str(int(time.time()) + 1)
    args = ("events", "--since", start, "--until", until, "--filter", f"container={target}",
            "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
    mine, docker = cli.both(*args)
    assert mine.stdout == docker.stdout and "container destroy" in mine.stdout
    mine = cli.dy("events", "--since", start, "--until", until, "--filter",
                  f"container={target}")
    assert mine.stdout.splitlines()[0].split(" ", 1)[1] == \
        cli.dk("events", "--since", start, "--until", until, "--filter",
               f"container={target}").stdout.splitlines()[0].split(" ", 1)[1]


def test_ps_start_up_imports(cli: CLIs) -> None:
    """The installed launcher runs `ps` without site, typing, re, json or http.client."""
    result = subprocess.run([sys.executable, "-IS", "-X", "importtime", DOCKYARD, "ps"],
                            env=cli.env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CONTAINER ID   IMAGE")
    loaded = {line.split("|")[-1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:") and "|" in line}
    assert "dockyard.cli.container" in loaded
    assert not loaded & {"typing", "re", "json", "http.client", "email.parser", "ssl",
                         "argparse", "enum", "socket", "datetime", "site"}
    total = sum(int(line.split("|")[1]) for line in result.stderr.splitlines()
                if line.startswith("import time:") and line.split("|")[1].strip().isdigit()
                and not line.split("|")[2].startswith("  "))
    assert total < 50_000, f"top-level imports took {total} us"


def test_stats_port_and_prune(cli: CLIs) -> None:
    target = name()
    assert cli.dy("run", "-d", "--name", target, IMAGE, "sleep", "300").returncode == 0
    try:
        mine, docker = cli.both("stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}",
                                target)
        assert mine.stdout == docker.stdout == f"{target} 1\n"
        table = cli.dy("stats", "--no-stream", target).stdout.splitlines()
        assert table[0] == cli.dk("stats", "--no-stream", target).stdout.splitlines()[0]
        mine, docker = cli.both("port", target)
        assert (mine.returncode, mine.stdout) == (docker.returncode, docker.stdout)
    finally:
        cli.dk("rm", "-f", target)
    stopped = name()
    assert cli.dy("create", "--name", stopped, IMAGE).returncode == 0
    pruned = cli.dy("container", "prune", "-f")
    assert pruned.returncode == 0 and "Total reclaimed space:" in pruned.stdout
    assert cli.dy("ps", "-aq", "--filter", f"name={stopped}").stdout == ""
