"""dockyardd against the real Docker Engine (Debian's docker.io), side by side in one run.

Both daemons are started by this script on their own sockets and data roots, both with
--bridge none and no iptables (nothing changes on the host; bench/network_bench.py
compares them with their bridges), both load the same busybox image (the shared fixture,
from Debian's busybox-static), and each row alternates between them round by round.
Medians.

Rows: `docker run --rm IMAGE true` through the docker CLI; create+start+wait+remove
through the API (docker-py); `docker exec CONTAINER true`; `docker logs` of 100k lines;
`docker save` and `docker load` of a 200 MB image (made with `docker commit`); `docker ps
-a` with 50 containers; memory per running container (helper processes' PSS + daemon
growth, for 20 sleeping containers) and the idle daemon's RSS.

usage: .venv/bin/python bench/engine_bench.py [--rounds 20] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
BIN = PROJECT / ".venv" / "bin"
DOCKER = "/usr/local/bin/docker" if Path("/usr/local/bin/docker").exists() else "docker"
FIXTURE = PROJECT.parent / "shared" / "fixtures" / "fixture-docker20-save.tar"
IMAGE = "dockyard-fixture:1.0"  # static busybox, written by Docker 20.10's docker save


class Engine:
    def __init__(self, name: str, root: Path, argv: list[str], socket: Path) -> None:
        self.name = name
        self.root = root
        self.socket = socket
        self.argv = argv
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}

    def start(self) -> None:
        log = open(self.root / "daemon.log", "ab")  # noqa: SIM115 - lives with the daemon
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=log,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while subprocess.run([DOCKER, "version"], env=self.env, capture_output=True,
                             check=False).returncode != 0:
            if time.monotonic() > deadline or self.process.poll() is not None:
                sys.exit(f"{self.name} did not start: see {self.root / 'daemon.log'}")
            time.sleep(0.2)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([DOCKER, *args], env=self.env, capture_output=True,
                              check=check, stdin=subprocess.DEVNULL, timeout=120)

    def stop(self) -> None:
        if self.process is None:
            return
        ids = self.docker("ps", "-aq", check=False).stdout.decode().split()
        if ids:
            self.docker("rm", "-f", *ids, check=False)
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


# Both engines without a bridge network and without firewall rules: nothing changes on
# the host (bench/network_bench.py compares the bridges).
NO_NETWORK_DOCKYARD = ("--bridge", "none", "--iptables=false")
NO_NETWORK_DOCKER = ("--bridge", "none", "--iptables=false", "--ip6tables=false",
                     "--ip-forward=false", "--ip-masq=false")


def dockyard_engine(root: Path, cgroup_parent: str, *flags: str,
                    kind: type[Engine] | None = None) -> Engine:
    """dockyardd on its own socket, data root and exec root under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "daemon.json").write_text("{}")
    return (kind or Engine)("dockyard", root, [
        str(BIN / "dockyardd"), "-H", f"unix://{root}/d.sock", "--data-root",
        str(root / "data"), "--exec-root", str(root / "exec"), "--config-file",
        str(root / "daemon.json"), "--cgroup-parent", cgroup_parent, *flags], root / "d.sock")


def docker_engine(root: Path, cgroup_parent: str, *flags: str,
                  kind: type[Engine] | None = None) -> Engine:
    """A private dockerd (Debian's docker.io) on its own socket, data root and exec root."""
    root.mkdir(parents=True, exist_ok=True)
    return (kind or Engine)("docker", root, [
        "dockerd", "-H", f"unix://{root}/d.sock", "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"), "--pidfile", str(root / "d.pid"),
        "--cgroup-parent", cgroup_parent, *flags], root / "d.sock")


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def helper_pids(engine: Engine) -> list[int]:
    """Per-container helpers: dockyard-shim for Dockyard, containerd-shim for Docker."""
    names = ("dockyard.shim", "containerd-shim")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if any(n in cmdline for n in names) and str(engine.root) in cmdline:
                found.append(int(entry.name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    for tool in ("dockerd", DOCKER):
        if shutil.which(tool) is None and not Path(tool).exists():
            sys.exit(f"{tool} is missing: apt-get install docker.io")
    import docker as docker_py

    # `timeout` and Ctrl-C must still stop both daemons (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("interrupted"))

    with tempfile.TemporaryDirectory(prefix="dockyard-engine-bench-") as tmp:
        root = Path(tmp)
        engines = [dockyard_engine(root / "dy", "/dockyard-bench", *NO_NETWORK_DOCKYARD),
                   docker_engine(root / "dk", "/docker-bench", *NO_NETWORK_DOCKER)]
        results: dict[str, dict[str, float]] = {}
        try:
            for engine in engines:
                engine.start()
                engine.docker("load", "-i", str(FIXTURE))
                engine.docker("run", "--rm", IMAGE, "true")  # warm up
            idle = {e.name: rss_kib(e.process.pid) for e in engines if e.process}
            rows: dict[str, dict[str, list[float]]] = {}

            def add(row: str, engine: Engine, seconds: float) -> None:
                rows.setdefault(row, {}).setdefault(engine.name, []).append(seconds)

            clients = {e.name: docker_py.APIClient(base_url=f"unix://{e.socket}",
                                                   version="1.41") for e in engines}
            for engine in engines:
                engine.docker("run", "-d", "--name", "execbench", IMAGE, "sleep", "3600")
            for _ in range(args.rounds):
                for engine in engines:
                    add("run --rm (docker CLI)", engine,
                        timed(lambda e=engine: e.docker("run", "--rm", IMAGE, "true")))
                    api = clients[engine.name]

                    def lifecycle(api: docker_py.APIClient = api) -> None:
                        container = api.create_container(IMAGE, ["true"])
                        api.start(container)
                        api.wait(container)
                        api.remove_container(container)

                    add("create+start+wait+remove (API)", engine, timed(lifecycle))
                    add("exec true (docker CLI)", engine,
                        timed(lambda e=engine: e.docker("exec", "execbench", "true")))
            heavy_rounds = max(3, args.rounds // 4)
            for engine in engines:
                engine.docker("run", "--name", "logbench", IMAGE, "seq", "1", "100000")
                engine.docker("run", "--name", "bigbench", IMAGE, "sh", "-c",
                              "head -c 200000000 /dev/urandom > /big")
                engine.docker("commit", "bigbench", "bench-big:latest")
            for _ in range(heavy_rounds):
                for engine in engines:
                    add("logs, 100k lines", engine,
                        timed(lambda e=engine: e.docker("logs", "logbench")))
                    archive = engine.root / "big.tar"
                    add("save, 200 MB image", engine, timed(
                        lambda e=engine, a=archive: e.docker("save", "-o", str(a),
                                                             "bench-big:latest")))
                    engine.docker("rmi", "-f", "bench-big:latest")
                    add("load, 200 MB image", engine, timed(
                        lambda e=engine, a=archive: e.docker("load", "-i", str(a))))
                    archive.unlink()
            for engine in engines:
                engine.docker("rm", "-f", "execbench", "logbench", "bigbench")
                for i in range(50):
                    engine.docker("create", "--name", f"ps{i}", IMAGE, "true")
            for _ in range(args.rounds):
                for engine in engines:
                    add("ps -a, 50 containers", engine,
                        timed(lambda e=engine: e.docker("ps", "-a")))
            memory = {}
            for engine in engines:
                ids = engine.docker("ps", "-aq").stdout.decode().split()
                engine.docker("rm", "-f", *ids)
                assert engine.process is not None
                before_daemon = rss_kib(engine.process.pid)
                before_helpers = pss_kib(helper_pids(engine))
                for i in range(20):
                    engine.docker("run", "-d", "--name", f"mem{i}", IMAGE, "sleep", "3600")
                time.sleep(1)
                growth = (rss_kib(engine.process.pid) - before_daemon) + \
                    (pss_kib(helper_pids(engine)) - before_helpers)
                memory[engine.name] = growth / 20
            for row, per_engine in rows.items():
                results[row] = {n: statistics.median(v) * 1000 for n, v in per_engine.items()}
        finally:
            for engine in engines:
                engine.stop()
            remove_cgroup_parents("dockyard-bench", "docker-bench")
    print_table(results, memory, idle, args.rounds, args.markdown)


def print_table(results: dict[str, dict[str, float]], memory: dict[str, float],
                idle: dict[str, int], rounds: int, markdown: bool) -> None:
    lines = [[f"operation (median of {rounds})", "dockyard", "docker", "dockyard / docker"]]
    for row, values in results.items():
        lines.append([f"{row}, ms", f"{values['dockyard']:.1f}", f"{values['docker']:.1f}",
                      f"{values['dockyard'] / values['docker']:.2f}"])
    lines.append(["memory per running container, KiB", f"{memory['dockyard']:.0f}",
                  f"{memory['docker']:.0f}", f"{memory['dockyard'] / memory['docker']:.2f}"])
    lines.append(["idle daemon RSS, MiB", f"{idle['dockyard'] / 1024:.1f}",
                  f"{idle['docker'] / 1024:.1f}", f"{idle['dockyard'] / idle['docker']:.2f}"])
    print_lines(lines, markdown)


def print_lines(lines: list[list[str]], markdown: bool) -> None:
    """A header line and rows: a markdown table, or columns aligned for a terminal."""
    if markdown:
        print("| " + " | ".join(lines[0]) + " |")
        print("|" + "---|" * len(lines[0]))
        for line in lines[1:]:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    for line in lines:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)))


def remove_cgroup_parents(*names: str) -> None:
    """The benchmark's cgroup parents in every hierarchy, emptied bottom up (an engine that
    was killed may leave its containers' cgroups)."""
    for name in names:
        for base in Path("/sys/fs/cgroup").iterdir():
            path = base / name
            if path.is_dir():
                subprocess.run(["find", str(path), "-depth", "-type", "d", "-exec", "rmdir",
                                "{}", ";"], check=False, capture_output=True)


if __name__ == "__main__":
    main()
