"""dockyardd's networking against the real Docker Engine (Debian's docker.io 20.10), side by
side in one run, each with its bridge, NAT and port publishing on.

Docker runs on its own data root with a bridge this script makes for it (`-b`, so it does
not touch a docker0) and its default settings otherwise (iptables on, userland proxy on);
Dockyard with its default bridge and its own chain prefix. Rows alternate between the two
round by round; medians.

Rows: `run --rm IMAGE true` on the default bridge; `run --rm -p PORT:80 IMAGE true`;
`network create` + `network rm`; connection setup (connect, one small HTTP request and its
answer, close) to busybox httpd through a published port on 127.0.0.1; throughput of a
64 MiB download through the same port.

At the end both daemons stop, Docker's bridge and the chains it made are removed, and the
FORWARD policy Docker set is put back.

usage: .venv/bin/python bench/network_bench.py [--rounds 20] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_bench import (  # noqa: E402
    FIXTURE,
    IMAGE,
    Engine,
    docker_engine,
    dockyard_engine,
    print_lines,
    remove_cgroup_parents,
    timed,
)

DOCKER_BRIDGE = "dkbench0"
DOCKYARD_BRIDGE = "dybench0"
DOCKYARD_PREFIX = "DYBENCH"
BIG = 64 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(port: int, path: str) -> int:
    """One connection, one request, the whole answer: the bytes received."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: bench\r\n\r\n".encode())
        total = 0
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                return total
            total += len(chunk)


def wait_http(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if http_get(port, "/small") > 0:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"no answer on 127.0.0.1:{port}")


def make_docker_bridge() -> None:
    from dockyard.network import bridge, ipam

    subnet = ipam.pick_subnet(ipam.host_routes())
    bridge.ensure_bridge(DOCKER_BRIDGE, [f"{ipam.default_gateway(subnet)}/{subnet.prefixlen}"])


def iptables_save() -> str:
    return subprocess.run(["iptables-save"], capture_output=True, text=True,
                          check=False).stdout


def forward_policy() -> str:
    for line in iptables_save().splitlines():
        if line.startswith(":FORWARD "):
            return line.split()[1]
    return "ACCEPT"


def remove_docker_rules(policy: str) -> None:
    """dockerd leaves its chains behind when it stops: ours to remove (it ran for us)."""
    chains = ("DOCKER", "DOCKER-USER", "DOCKER-ISOLATION-STAGE-1", "DOCKER-ISOLATION-STAGE-2")
    for table in ("filter", "nat"):
        saved = subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True,
                               check=False).stdout
        lines = [f"*{table}"]
        present = [c for c in chains if f":{c} " in saved]
        lines += [f":{c} - [0:0]" for c in present]
        lines += ["-D" + line[2:] for line in saved.splitlines()
                  if line.startswith("-A ") and line.split()[1] not in chains
                  and any(f"-j {c}" in line or f"-o {DOCKER_BRIDGE}" in line
                          or f"-i {DOCKER_BRIDGE}" in line for c in chains)]
        lines += [f"-X {c}" for c in present]
        lines.append("COMMIT")
        subprocess.run(["iptables-restore", "--noflush", "-w"], input="\n".join(lines) + "\n",
                       text=True, check=False, capture_output=True)
    subprocess.run(["iptables", "-w", "-P", "FORWARD", policy], check=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("interrupted"))
    policy = forward_policy()
    from dockyard.network import bridge

    with tempfile.TemporaryDirectory(prefix="dockyard-network-bench-") as tmp:
        root = Path(tmp)
        engines = [
            dockyard_engine(root / "dy", "/dockyard-netbench", "--bridge", DOCKYARD_BRIDGE,
                            "--firewall-prefix", DOCKYARD_PREFIX),
            docker_engine(root / "dk", "/docker-netbench", "--bridge", DOCKER_BRIDGE,
                          "--ip6tables=false"),
        ]
        rows: dict[str, dict[str, list[float]]] = {}

        def add(row: str, engine: Engine, value: float) -> None:
            rows.setdefault(row, {}).setdefault(engine.name, []).append(value)

        try:
            make_docker_bridge()
            for engine in engines:
                engine.start()
                engine.docker("load", "-i", str(FIXTURE))
                engine.docker("run", "--rm", IMAGE, "true")  # warm up
            for n in range(args.rounds):
                for engine in engines:
                    add("run --rm (default bridge), ms", engine, 1000 * timed(
                        lambda e=engine: e.docker("run", "--rm", IMAGE, "true")))
                    port = free_port()
                    add("run --rm -p PORT:80, ms", engine, 1000 * timed(
                        lambda e=engine, p=port: e.docker("run", "--rm", "-p", f"{p}:80",
                                                          IMAGE, "true")))
                    name = f"benchnet{n}"
                    add("network create + rm, ms", engine, 1000 * timed(
                        lambda e=engine, m=name: (e.docker("network", "create", m),
                                                  e.docker("network", "rm", m))))
            ports = {}
            for engine in engines:
                ports[engine.name] = free_port()
                engine.docker("run", "-d", "--name", "web", "-p", f"{ports[engine.name]}:80",
                              IMAGE, "sh", "-c",
                              f"mkdir /www && echo hello > /www/small && head -c {BIG} "
                              "/dev/zero > /www/big && exec httpd -f -p 80 -h /www")
                wait_http(ports[engine.name])
            for _ in range(args.rounds):
                for engine in engines:
                    port = ports[engine.name]
                    for _ in range(10):
                        add("connect + small HTTP GET via 127.0.0.1:PORT, ms", engine,
                            1000 * timed(lambda p=port: http_get(p, "/small")))
            for _ in range(max(3, args.rounds // 4)):
                for engine in engines:
                    port = ports[engine.name]
                    seconds = timed(lambda p=port: http_get(p, "/big"))
                    add("throughput via 127.0.0.1:PORT, MiB/s (higher is better)", engine,
                        BIG / (1 << 20) / seconds)
        finally:
            for engine in engines:
                engine.stop()
            bridge.delete_link(DOCKER_BRIDGE)
            remove_docker_rules(policy)
            remove_cgroup_parents("dockyard-netbench", "docker-netbench")
    print_table(rows, args.rounds, args.markdown)


def print_table(rows: dict[str, dict[str, list[float]]], rounds: int, markdown: bool) -> None:
    lines = [[f"operation (median, {rounds} rounds)", "dockyard", "docker", "dockyard / docker"]]
    for row, values in rows.items():
        dy, dk = statistics.median(values["dockyard"]), statistics.median(values["docker"])
        lines.append([row, f"{dy:.1f}", f"{dk:.1f}", f"{dy / dk:.2f}"])
    print_lines(lines, markdown)


if __name__ == "__main__":
    main()
