"""Builds on dockyardd against the real Docker Engine (Debian's docker.io, classic builder),
side by side in one run, through the same client: `DOCKER_BUILDKIT=0 docker build`.

Both daemons are started by this script (both with --bridge none and no iptables, as
bench/engine_bench.py does) and load the same busybox fixture. The Dockerfile has a COPY
and 5 RUN steps. Rows, alternating between the engines round by round, medians:
- cold: `docker build --no-cache` (every step runs and commits);
- cached: the same build again (every step from the cache);
- last step changed: the last RUN's text differs from every earlier round's.

usage: .venv/bin/python bench/build_bench.py [--rounds 10] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_bench import (  # noqa: E402
    DOCKER,
    FIXTURE,
    IMAGE,
    NO_NETWORK_DOCKER,
    NO_NETWORK_DOCKYARD,
    Engine,
    docker_engine,
    dockyard_engine,
    print_lines,
    remove_cgroup_parents,
    timed,
)

DOCKERFILE = f"""\
FROM {IMAGE}
COPY data.txt /data.txt
RUN echo one > /r1
RUN echo two > /r2 && cat /data.txt >> /r2
RUN mkdir -p /r3 && for i in 1 2 3 4 5 6 7 8; do echo $i > /r3/$i; done
RUN ls -l /bin > /r4
RUN echo {{last}} > /r5
"""


def build(engine: Engine, context: Path, last: str, no_cache: bool = False) -> None:
    (context / "Dockerfile").write_text(DOCKERFILE.format(last=last))
    argv = [DOCKER, "build", "-q", "-t", "bench-build:latest"]
    if no_cache:
        argv.append("--no-cache")
    subprocess.run([*argv, str(context)], env={**engine.env, "DOCKER_BUILDKIT": "0"},
                   capture_output=True, check=True, stdin=subprocess.DEVNULL, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("interrupted"))
    with tempfile.TemporaryDirectory(prefix="dockyard-build-bench-") as tmp:
        root = Path(tmp)
        engines = [dockyard_engine(root / "dy", "/dockyard-build-bench", *NO_NETWORK_DOCKYARD),
                   docker_engine(root / "dk", "/docker-build-bench", *NO_NETWORK_DOCKER)]
        rows: dict[str, dict[str, list[float]]] = {}
        try:
            contexts = {}
            for engine in engines:
                engine.start()
                engine.docker("load", "-i", str(FIXTURE))
                context = root / f"ctx-{engine.name}"
                context.mkdir()
                (context / "data.txt").write_text("data\n" * 100)
                contexts[engine.name] = context
                build(engine, context, "warm-up")
            for round_number in range(args.rounds):
                for engine in engines:
                    context = contexts[engine.name]
                    cells = rows.setdefault("cold build (--no-cache), ms", {})
                    cells.setdefault(engine.name, []).append(timed(
                        lambda e=engine, c=context: build(e, c, "cold", no_cache=True)))
                    cells = rows.setdefault("fully cached rebuild, ms", {})
                    cells.setdefault(engine.name, []).append(timed(
                        lambda e=engine, c=context: build(e, c, "cold")))
                    cells = rows.setdefault("rebuild, last step changed, ms", {})
                    cells.setdefault(engine.name, []).append(timed(
                        lambda e=engine, c=context, n=round_number: build(e, c, f"new-{n}")))
        finally:
            for engine in engines:
                engine.stop()
            remove_cgroup_parents("dockyard-build-bench", "docker-build-bench")
    lines = [[f"build (median of {args.rounds})", "dockyard", "docker", "dockyard / docker"]]
    for row, values in rows.items():
        dy, dk = (statistics.median(values[n]) * 1000 for n in ("dockyard", "docker"))
        lines.append([row, f"{dy:.0f}", f"{dk:.0f}", f"{dy / dk:.2f}"])
    print_lines(lines, args.markdown)


if __name__ == "__main__":
    main()
