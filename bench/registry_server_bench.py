"""`dockyard registry serve` against the reference registry (Debian's docker-registry,
distribution 2.8), side by side in one run, both driven by skopeo.

An image of four 50 MB layers (incompressible content, gzip-framed so that skopeo moves
it as it is) is pushed to and pulled from each registry, alternating round by round:
cold (a new repository for the push, an empty destination for the pull) and warm (every
layer already there). Both registries run on 127.0.0.1 with their storage under one
temporary directory; the reference registry gets a config of its own. Medians.

usage: .venv/bin/python bench/registry_server_bench.py [--rounds 5] [--markdown]
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
DOCKYARD = PROJECT / ".venv" / "bin" / "dockyard"
LAYERS = 4
LAYER_SIZE = 50 << 20
TOTAL_MB = LAYERS * LAYER_SIZE / 1e6


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} exited early")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{name} did not start")


def make_layout(directory: Path) -> None:
    """An OCI layout holding the benchmark image, tagged `bench`."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    layers, diff_ids = [], []
    for _ in range(LAYERS):
        raw = os.urandom(LAYER_SIZE)
        diff_ids.append(f"sha256:{hashlib.sha256(raw).hexdigest()}")
        packed = gzip.compress(raw, compresslevel=0, mtime=0)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": put(packed), "size": len(packed)})
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": put(config), "size": len(config)},
        "layers": layers}).encode()
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": put(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "bench"}}]}
    (directory / "index.json").write_text(json.dumps(index))
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


class Registry:
    def __init__(self, name: str, argv: list[str], port: int, log: Path) -> None:
        self.name = name
        self.port = port
        with open(log, "wb") as out:
            self.process = subprocess.Popen(argv, stdout=out, stderr=out,
                                            stdin=subprocess.DEVNULL)
        _wait_for(port, self.process, name)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_dockyard(work: Path) -> Registry:
    port = _free_port()
    return Registry("dockyard", [str(DOCKYARD), "registry", "serve", "--addr",
                                 f"127.0.0.1:{port}", "--root", str(work / "dockyard-root")],
                    port, work / "dockyard.log")


def start_distribution(work: Path) -> Registry:
    port = _free_port()
    config = work / "distribution.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'distribution-root'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    return Registry("docker-registry", ["docker-registry", "serve", str(config)], port,
                    work / "distribution.log")


def _skopeo(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--quiet", *args], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run(rounds: int, markdown: bool) -> None:
    work = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    registries: list[Registry] = []
    try:
        layout = work / "layout"
        make_layout(layout)
        rows: dict[str, dict[str, list[float]]] = {}

        def measure(row: str, registry: Registry, *args: str) -> None:
            rows.setdefault(row, {}).setdefault(registry.name, []).append(_skopeo(*args))

        for number in range(rounds):
            # New registries on new ports each round: skopeo's blob-info cache remembers
            # where it pushed a blob and would mount it instead of pushing it again.
            round_dir = work / f"round-{number}"
            round_dir.mkdir()
            registries = [start_dockyard(round_dir), start_distribution(round_dir)]
            for registry in (registries if number % 2 == 0 else registries[::-1]):
                ref = f"docker://127.0.0.1:{registry.port}/bench/app:1"
                source = f"oci:{layout}:bench"
                target = f"oci:{round_dir / f'pulled-{registry.name}'}:x"
                measure("push, cold", registry, "--dest-tls-verify=false", source, ref)
                measure("push, layers present", registry, "--dest-tls-verify=false", source,
                        ref)
                measure("pull, cold", registry, "--src-tls-verify=false", ref, target)
                measure("pull, layers present", registry, "--src-tls-verify=false", ref,
                        target)
            for registry in registries:
                registry.stop()
            registries = []
            shutil.rmtree(round_dir, ignore_errors=True)
        names = ["dockyard", "docker-registry"]
        title = (f"skopeo copy of a {TOTAL_MB:.0f} MB image ({LAYERS} layers) through "
                 f"each registry, median of {rounds}")
        header = ["", *(f"{n} s (MB/s)" for n in names), "dockyard / docker-registry"]
        lines = []
        for row, results in rows.items():
            medians = [statistics.median(results[n]) for n in names]
            cells = [f"{m:.3f} ({TOTAL_MB / m:.0f})" for m in medians]
            lines.append([row, *cells, f"{medians[1] / medians[0]:.2f}x faster"
                          if medians[0] <= medians[1]
                          else f"{medians[0] / medians[1]:.2f}x slower"])
        if markdown:
            print(f"{title}\n\n| " + " | ".join(header) + " |")
            print("|" + "---|" * len(header))
            for line in lines:
                print("| " + " | ".join(line) + " |")
        else:
            print(title)
            widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
            for line in [header, *lines]:
                print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))
    finally:
        for registry in registries:
            registry.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    for tool in ("skopeo", "docker-registry"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (scripts/install.sh installs it)")
    run(args.rounds, args.markdown)


if __name__ == "__main__":
    main()
