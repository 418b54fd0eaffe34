"""Push and pull of a 200 MB image through Debian's docker-registry on 127.0.0.1:
dockyardd against the real Docker Engine 20.10 (a private dockerd on its own data root)
and skopeo, side by side in one run. Medians of MB/s (image bytes as the registry holds
them / seconds).

The image: busybox-static, then four layers of 50 MB of random (incompressible) data,
made offline, copied into a source registry by skopeo (which gzips the layers, as
images on real registries are). Rows:
- pull cold: nothing of the image local (dockyardd on a fresh data root; docker after
  `docker rmi`; skopeo into a new OCI layout directory);
- pull warm: every layer already there (pulled again);
- push cold: to an empty registry (restarted on a fresh storage root);
- push warm: every blob already in that registry (pushed again).
A pull by dockerd and dockyardd includes unpacking the layers; skopeo only stores blobs.

usage: .venv/bin/python bench/registry_bench.py [--rounds 3] [--layer-mb 50] [--markdown]
                                                [--verbose]
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
sys.path.insert(0, str(PROJECT))

from bench.engine_bench import (  # noqa: E402
    NO_NETWORK_DOCKER,
    NO_NETWORK_DOCKYARD,
    Engine,
    docker_engine,
    dockyard_engine,
)
from tests.distribution_images import make_oci_layout  # noqa: E402
from tests.distribution_registry import Registry  # noqa: E402

BIN = PROJECT / ".venv" / "bin"
DOCKER = "/usr/local/bin/docker" if Path("/usr/local/bin/docker").exists() else "docker"
TOOLS = ("dockyard", "docker", "skopeo")


class Daemon(Engine):
    """engine_bench's Engine, driven by its own CLI (dockyard's or docker's)."""

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        super().start()

    def cli(self, *args: str) -> None:
        program = str(BIN / "dockyard") if self.name == "dockyard" else DOCKER
        subprocess.run([program, *args], env=self.env, capture_output=True, check=True,
                       stdin=subprocess.DEVNULL, timeout=600)

    def stop(self) -> None:
        super().stop()
        self.process = None


def dockyard_daemon(root: Path) -> Daemon:
    daemon = dockyard_engine(root, "/dockyard-bench", *NO_NETWORK_DOCKYARD, kind=Daemon)
    assert isinstance(daemon, Daemon)
    return daemon


def docker_daemon(root: Path, registries: list[str]) -> Daemon:
    insecure = [arg for host in registries for arg in ("--insecure-registry", host)]
    daemon = docker_engine(root, "/docker-bench", *NO_NETWORK_DOCKER, *insecure, kind=Daemon)
    assert isinstance(daemon, Daemon)
    return daemon


def timed(action: Callable[[], object]) -> float:
    # The previous step's writes (another tool's pull, the registry's push) are flushed
    # first: otherwise whoever syncs next (fsync of a blob, syncfs of a layer) pays for
    # them, and the order of the tools would decide the figures.
    os.sync()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def skopeo(*args: str) -> None:
    subprocess.run(["skopeo", *args], check=True, capture_output=True, timeout=600)


def image_bytes(registry: Registry, repository: str) -> int:
    import json
    import urllib.request

    request = urllib.request.Request(
        f"http://{registry.host}/v2/{repository}/manifests/1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                           "application/vnd.docker.distribution.manifest.v2+json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        manifest = json.loads(response.read())
    return int(manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layer-mb", type=int, default=50)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="every sample on stderr")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    for tool in ("dockerd", DOCKER, "skopeo", "docker-registry"):
        if shutil.which(tool) is None and not Path(tool).exists():
            sys.exit(f"{tool} is missing: run scripts/install.sh")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("interrupted"))

    samples: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="dockyard-registry-bench-") as tmp:
        root = Path(tmp)
        source = Registry(root / "source").start()
        target = Registry(root / "target-0")
        started: list[Daemon] = []
        try:
            layout = make_oci_layout(root / "layout", "1", [
                {f"data/blob{i}": os.urandom(args.layer_mb << 20)} for i in range(4)])
            skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:1",
                   f"docker://{source.host}/bench/image:1")
            shutil.rmtree(layout)
            size = image_bytes(source, "bench/image")
            mb = size / 1e6
            print(f"image: {mb:.1f} MB in the registry; {args.rounds} rounds", file=sys.stderr)
            pull_ref = f"{source.host}/bench/image:1"
            # Warm the registry's files into the page cache for every tool alike.
            skopeo("copy", "--src-tls-verify=false", f"docker://{pull_ref}",
                   f"oci:{root / 'warmup'}:1")
            shutil.rmtree(root / "warmup")

            def fresh_target(round_: int, tool: str) -> Registry:
                nonlocal target
                target.stop()
                shutil.rmtree(target.root, ignore_errors=True)
                target = Registry(root / f"target-{round_}-{tool}", port=target.port).start()
                return target

            docker = docker_daemon(root / "docker", [source.host, target.host])
            docker.start()
            started.append(docker)

            def add(row: str, tool: str, seconds: float) -> None:
                samples.setdefault(row, {}).setdefault(tool, []).append(mb / seconds)
                if args.verbose:
                    print(f"  {row} {tool}: {mb / seconds:.0f} MB/s", file=sys.stderr)

            for round_ in range(args.rounds):
                # dockyard: a fresh data root is a cold start.
                dockyard = dockyard_daemon(root / f"dockyard-{round_}")
                dockyard.start()
                started.append(dockyard)
                for tool, daemon in (("dockyard", dockyard), ("docker", docker)):
                    push_ref = f"{fresh_target(round_, tool).host}/bench/image:1"
                    add("pull cold", tool, timed(lambda d=daemon: d.cli("pull", pull_ref)))
                    add("pull warm", tool, timed(lambda d=daemon: d.cli("pull", pull_ref)))
                    daemon.cli("tag", pull_ref, push_ref)
                    add("push cold", tool, timed(lambda d=daemon, r=push_ref: d.cli("push", r)))
                    add("push warm", tool, timed(lambda d=daemon, r=push_ref: d.cli("push", r)))
                    if tool == "docker":
                        daemon.cli("rmi", pull_ref, push_ref)
                dockyard.stop()
                started.remove(dockyard)
                shutil.rmtree(dockyard.root, ignore_errors=True)
                directory = root / f"skopeo-{round_}"
                push_ref = f"{fresh_target(round_, 'skopeo').host}/bench/image:1"
                copy_in = ["copy", "--src-tls-verify=false", f"docker://{pull_ref}",
                           f"oci:{directory}:1"]
                add("pull cold", "skopeo", timed(lambda a=copy_in: skopeo(*a)))
                add("pull warm", "skopeo", timed(lambda a=copy_in: skopeo(*a)))
                copy_out = ["copy", "--dest-tls-verify=false", f"oci:{directory}:1",
                            f"docker://{push_ref}"]
                add("push cold", "skopeo", timed(lambda a=copy_out: skopeo(*a)))
                add("push warm", "skopeo", timed(lambda a=copy_out: skopeo(*a)))
                shutil.rmtree(directory)
                print(f"round {round_ + 1} done", file=sys.stderr)
        finally:
            for daemon in started:
                daemon.stop()
            target.stop()
            source.stop()
    print_table(samples, args.markdown)


def print_table(samples: dict[str, dict[str, list[float]]], markdown: bool) -> None:
    header = ["MB/s (median)", *TOOLS, "dockyard/docker", "dockyard/skopeo"]
    rows = []
    for row, by_tool in samples.items():
        medians = {tool: statistics.median(by_tool[tool]) for tool in TOOLS}
        rows.append([row, *(f"{medians[t]:.0f}" for t in TOOLS),
                     f"{medians['dockyard'] / medians['docker']:.2f}x",
                     f"{medians['dockyard'] / medians['skopeo']:.2f}x"])
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for cells in rows:
            print("| " + " | ".join(cells) + " |")
        return
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for cells in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)))


if __name__ == "__main__":
    main()
