"""Real engines use dockyard-runc in place of runc.

podman drives the OCI runtime through conmon, dockerd through containerd's runc shim
(containerd-shim-runc-v2). Every check runs with dockyard-runc and with runc as the control,
so that a failure caused by the engine or the machine shows up with both. Each engine gets
its own storage, state, socket and cgroup parent under a temporary directory and no
networking (no bridge, no firewall rule, no sysctl); what it made is removed at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import require_root
from tests.host import (
    ping,
    processes_using,
    remove_cgroups,
    run_in_terminal,
    unmount_all_under,
    wait_until,
)
from tests.integration.conftest import RUNTIME

RUNC = "/usr/sbin/runc"
DOCKERD = "/usr/sbin/dockerd"
RUNTIMES = {"dockyard-runc": RUNTIME, "runc": RUNC}
IMAGE = "localhost/dockyard-busybox:test"
# podman asks by default for RLIMIT_NOFILE and RLIMIT_NPROC above the hard limits of a
# machine whose root lacks CAP_SYS_RESOURCE (this one): every runtime, runc and crun
# included, then fails with EPERM. Both engines get limits any machine allows, and
# `ulimit -n` checks that the runtime applied them.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
# Exits 7 on SIGTERM, so that `stop` proves the signal went through the runtime's `kill`.
SERVER = ["sh", "-c", "trap 'exit 7' TERM; sleep 300 & wait"]

# Made on the host by the engines whatever their options say (podman 4.3's netavark state
# dir, containers/image's blob cache, `podman system reset`'s config dir, containerd 1.6's
# shim sockets, dockerd 20.10's plugin dir); removed at the end if this session made them.
PODMAN_HOST_PATHS = [Path("/run/containers"), Path("/var/lib/containers"),
                     Path.home() / ".config" / "containers"]
DOCKER_HOST_PATHS = [Path("/run/containerd"), Path("/run/docker")]


# -- helpers ----------------------------------------------------------------------------------

def require_tools(*tools: str) -> None:
    # A missing tool is a failure, not a skip: these tests are the proof of the requirement.
    missing = [tool for tool in tools if shutil.which(tool) is None]
    assert not missing, f"missing tools: {', '.join(missing)}"


def run(argv: list[str], env: dict[str, str] | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, check=False)


def import_image(cli: list[str], env: dict[str, str] | None, rootfs: Path) -> None:
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None
    with tar.stdout:
        imported = subprocess.run([*cli, "import", "--change", 'CMD ["sh"]', "-", IMAGE],
                                  stdin=tar.stdout, env=env, capture_output=True, text=True,
                                  timeout=60, check=False)
    assert tar.wait() == 0 and imported.returncode == 0, imported.stderr


def runtime_ids(argv: list[str]) -> list[str]:
    listed = run([*argv, "list", "-q"])
    assert listed.returncode == 0, listed.stderr
    return listed.stdout.split()


def clean_up_engine(home: Path, cgroup_parent: str, host_paths: list[Path],
                    existed: set[Path]) -> list[str]:
    """Removes all an engine left; returns the processes that had to be killed."""
    wait_until(lambda: not processes_using(home), 15)
    left = [f"{pid}: {argv}" for pid, argv in processes_using(home)]
    for pid, _ in processes_using(home):
        os.kill(pid, signal.SIGKILL)
    unmount_all_under(home)
    remove_cgroups(cgroup_parent)
    shutil.rmtree(home)
    for path in host_paths:
        if path not in existed and path.exists():
            shutil.rmtree(path)
    return left


# -- the engines ------------------------------------------------------------------------------

@dataclass
class Engine:
    """One engine's CLI, pointed at its private storage (podman) or daemon (docker)."""

    cli: list[str]
    env: dict[str, str] | None
    home: Path
    runtime_names: dict[str, str]   # our runtime label -> the engine's --runtime value
    extra_run_options: list[str] = field(default_factory=list)

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run([*self.cli, *args], env=self.env)

    def in_terminal(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_in_terminal([*self.cli, *args], env=self.env)

    def run_options(self, runtime: str, network: str = "none") -> list[str]:
        return ["--runtime", self.runtime_names[runtime], "--network", network, *ULIMITS,
                *self.extra_run_options]

    def runtime_root(self, runtime: str) -> Path:
        # podman passes no --root: each runtime keeps its state in its default root.
        return {"dockyard-runc": Path("/run/dockyard-runc"), "runc": Path("/run/runc")}[runtime]

    def runtime_argv(self, runtime: str) -> list[str]:
        """The runtime's command line with the state root this engine makes it use."""
        return [RUNTIMES[runtime], "--root", str(self.runtime_root(runtime))]


class Docker(Engine):
    def runtime_root(self, runtime: str) -> Path:
        # dockerd 20.10 gives every runtime the root <exec-root>/runtime-runc (seen in the
        # shim's command lines); the shim adds the containerd namespace.
        return self.home / "exec" / "runtime-runc" / "moby"


def remove_from_runtime(engine: Engine, runtime: str, container_id: str) -> None:
    """After a failed test: a container the engine forgot but the runtime still lists."""
    argv = engine.runtime_argv(runtime)
    if container_id in runtime_ids(argv):
        run([*argv, "delete", "--force", container_id])
    if container_id in runtime_ids(argv):
        # `delete --force` killed it but failed later: only its state directory is left.
        shutil.rmtree(engine.runtime_root(runtime) / container_id)


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory,
           busybox_bundle_template: Path) -> Iterator[Engine]:
    require_root()
    require_tools("podman", "conmon", RUNC, RUNTIME, "tar", "unshare")
    home = tmp_path_factory.mktemp("podman")
    existed = {path for path in PODMAN_HOST_PATHS if path.exists()}
    cgroup_parent = f"/dockyard-test/podman-{uuid.uuid4().hex[:8]}"
    cli = ["podman", "--root", str(home / "storage"), "--runroot", str(home / "run"),
           "--tmpdir", str(home / "tmp"), "--network-config-dir", str(home / "networks"),
           "--volumepath", str(home / "volumes"), "--cgroup-manager", "cgroupfs",
           "--events-backend", "none", "--storage-driver", "overlay"]
    engine = Engine(cli, None, home, dict(RUNTIMES), ["--cgroup-parent", cgroup_parent])
    try:
        import_image(cli, None, busybox_bundle_template / "rootfs")
        yield engine
    finally:
        engine("rm", "--all", "--force", "--time", "0")
        # Removes images and containers and unmounts the storage.
        reset = engine("system", "reset", "--force")
        killed = clean_up_engine(home, cgroup_parent, PODMAN_HOST_PATHS, existed)
        assert reset.returncode == 0, reset.stderr
        assert not killed, f"processes outlived podman: {killed}"


def start_dockerd(home: Path, cgroup_parent: str) -> subprocess.Popen[bytes]:
    # No --containerd: dockerd starts its own containerd, with its socket and state under
    # --exec-root and --data-root. No bridge, no iptables rule, no ip_forward sysctl.
    argv = [DOCKERD, "-H", f"unix://{home}/docker.sock", "--data-root", str(home / "data"),
            "--exec-root", str(home / "exec"), "--pidfile", str(home / "docker.pid"),
            "--storage-driver", "overlay2", "--exec-opt", "native.cgroupdriver=cgroupfs",
            "--cgroup-parent", cgroup_parent, "--bridge", "none", "--iptables=false",
            "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
            "--add-runtime", f"dockyard={RUNTIME}"]
    with open(home / "dockerd.log", "wb") as log:
        daemon = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: daemon.poll() is not None or ping(home / "docker.sock"), 30)
    if daemon.poll() is not None or not ping(home / "docker.sock"):
        stop_dockerd(daemon)
        log_tail = (home / "dockerd.log").read_text(errors="replace")[-3000:]
        raise AssertionError(f"dockerd did not answer /_ping:\n{log_tail}")
    return daemon


def stop_dockerd(daemon: subprocess.Popen[bytes]) -> None:
    if daemon.poll() is not None:
        return
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
        raise AssertionError("dockerd did not stop within 30s of SIGTERM") from None


@pytest.fixture(scope="session")
def docker(tmp_path_factory: pytest.TempPathFactory,
           busybox_bundle_template: Path) -> Iterator[Engine]:
    require_root()
    require_tools(DOCKERD, "containerd", "containerd-shim-runc-v2", "docker", RUNC, RUNTIME,
                  "tar")
    home = tmp_path_factory.mktemp("docker")
    existed = {path for path in DOCKER_HOST_PATHS if path.exists()}
    cgroup_parent = f"/dockyard-test/docker-{uuid.uuid4().hex[:8]}"
    # The docker CLI on PATH (28.x) negotiates down to dockerd 20.10's API 1.41 by itself.
    env = {**os.environ, "DOCKER_HOST": f"unix://{home}/docker.sock",
           "DOCKER_CONFIG": str(home / "cli")}
    engine = Docker(["docker"], env, home, {"dockyard-runc": "dockyard", "runc": "runc"})
    daemon = None
    try:
        daemon = start_dockerd(home, cgroup_parent)
        import_image(engine.cli, env, busybox_bundle_template / "rootfs")
        yield engine
    finally:
        if daemon is not None:
            containers = engine("ps", "--all", "--quiet").stdout.split()
            if containers:
                engine("rm", "--force", *containers)
            stop_dockerd(daemon)
        # containerd and the shims name the exec-root on their command lines.
        killed = clean_up_engine(home, cgroup_parent, DOCKER_HOST_PATHS, existed)
        assert not killed, f"processes outlived dockerd: {killed}"


@pytest.fixture(params=["podman", "docker"])
def engine(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue(request.param)


# -- both engines -----------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_prints_output(engine: Engine, runtime: str) -> None:
    cid_file = engine.home / f"cid-{uuid.uuid4().hex[:8]}"
    result = engine("run", "--rm", "--cidfile", str(cid_file), *engine.run_options(runtime),
                    IMAGE, "sh", "-c", "echo hello; hostname; id -u; ulimit -n")
    assert result.returncode == 0, result.stderr
    container_id = cid_file.read_text().strip()
    assert result.stdout.split() == ["hello", container_id[:12], "0", "1024"]
    # `--rm` made the engine delete the container from the runtime too.
    assert container_id not in runtime_ids(engine.runtime_argv(runtime))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_returns_exit_status(engine: Engine, runtime: str) -> None:
    result = engine("run", "--rm", *engine.run_options(runtime), IMAGE,
                    "sh", "-c", "echo hi; exit 5")
    assert (result.returncode, result.stdout) == (5, "hi\n"), result.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_detached_exec_stop_rm(engine: Engine, runtime: str) -> None:
    name = f"dockyard-test-{uuid.uuid4().hex[:8]}"
    started = engine("run", "-d", "--name", name, *engine.run_options(runtime), IMAGE, *SERVER)
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.split()[-1]
    try:
        # The engine drove this very runtime: the container is in that runtime's state.
        assert container_id in runtime_ids(engine.runtime_argv(runtime))
        execed = engine("exec", name, "sh", "-c", "cat /proc/1/cmdline; exit 4")
        assert execed.returncode == 4, execed.stderr
        assert execed.stdout.split("\0")[:2] == ["sh", "-c"]
        in_tty = engine.in_terminal("exec", "-t", name, "sh", "-c", "tty; exit 6")
        assert in_tty.returncode == 6, in_tty.stdout + in_tty.stderr
        assert "/dev/pts/" in in_tty.stdout
        stopped = engine("stop", "--time", "10", name)
        assert stopped.returncode == 0, stopped.stderr
        status = engine("inspect", "--format", "{{.State.ExitCode}}", name)
        assert status.stdout.strip() == "7", status.stderr
        removed = engine("rm", name)
        assert removed.returncode == 0, removed.stderr
        assert container_id not in runtime_ids(engine.runtime_argv(runtime))
    finally:
        engine("rm", "--force", name)
        remove_from_runtime(engine, runtime, container_id)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_with_terminal(engine: Engine, runtime: str) -> None:
    result = engine.in_terminal("run", "--rm", "-it", *engine.run_options(runtime), IMAGE,
                                "sh", "-c", "tty; exit 6")
    assert result.returncode == 6, result.stdout + result.stderr
    assert "/dev/pts/0" in result.stdout


# -- podman only ------------------------------------------------------------------------------

@pytest.mark.parametrize("runtime", RUNTIMES)
def test_podman_rm_after_network_namespace_is_gone(podman: Engine, runtime: str) -> None:
    """podman's default (bridge) networking removes a container's netns before `delete`.

    Joining the netns of a helper process that exits while the container runs gives the
    same situation without touching the host's network: `delete` must still work.
    """
    name = f"dockyard-test-{uuid.uuid4().hex[:8]}"
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        netns = f"/proc/{holder.pid}/ns/net"
        assert wait_until(lambda: os.readlink(netns) != os.readlink("/proc/self/ns/net"), 5)
        started = podman("run", "-d", "--name", name,
                         *podman.run_options(runtime, network=f"ns:{netns}"), IMAGE, *SERVER)
    finally:
        holder.kill()
        holder.wait()
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.split()[-1]
    try:
        removed = podman("rm", "--force", "--time", "10", name)
        assert removed.returncode == 0, removed.stderr
        assert container_id not in runtime_ids(podman.runtime_argv(runtime))
    finally:
        remove_from_runtime(podman, runtime, container_id)
