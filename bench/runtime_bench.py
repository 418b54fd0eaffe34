"""dockyard-runc against runc and crun on one busybox bundle, side by side in one run.

Rows: `run` of /bin/true (foreground, container deleted at exit), and create + start +
wait + delete as four separate commands, then each of those commands on its own. Runtimes
are interleaved round by round so that machine noise hits them alike; the table shows
medians and the ratio to runc.

Debian's crun 1.8 refuses a cgroup v1 host whose hybrid cgroup2 mount has a controller
("cgroups in hybrid mode not supported"). So the benchmark runs all three in a private
mount namespace where /sys/fs/cgroup/unified is unmounted: the same plain cgroup v1 for
each, and nothing changes on the host.

usage: .venv/bin/python bench/runtime_bench.py [--rounds 30] [--markdown]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x20000
MS_REC, MS_PRIVATE, MNT_DETACH = 0x4000, 0x40000, 2
HYBRID_V2_MOUNT = b"/sys/fs/cgroup/unified"


def private_plain_cgroup_v1() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        sys.exit(f"unshare: {os.strerror(ctypes.get_errno())}")
    libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None)
    if os.path.ismount(HYBRID_V2_MOUNT):
        libc.umount2(HYBRID_V2_MOUNT, MNT_DETACH)


def runtimes() -> dict[str, str]:
    found = {"dockyard-runc": str(PROJECT / ".venv" / "bin" / "dockyard-runc")}
    for name in ("runc", "crun"):
        path = shutil.which(name)
        if path is None:
            sys.exit(f"{name} is not installed: apt-get install {name}")
        found[name] = path
    return found


def make_bundle(directory: Path) -> Path:
    subprocess.run([str(PROJECT / "scripts" / "make-busybox-bundle.sh"), str(directory),
                    "/bin/true"], check=True)
    config = json.loads((directory / "config.json").read_text())
    # cgroupsPath is per container; leave it empty so each runtime picks its default.
    config["linux"].pop("cgroupsPath", None)
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_true(binary: str, root: Path, bundle: Path, name: str) -> dict[str, float]:
    return {"run /bin/true": timed([binary, "--root", str(root), "run", "--bundle",
                                    str(bundle), name])}


def lifecycle(binary: str, root: Path, bundle: Path, name: str) -> dict[str, float]:
    pid_file = root / f"{name}.pid"
    base = [binary, "--root", str(root)]
    create = timed([*base, "create", "--bundle", str(bundle), "--pid-file", str(pid_file),
                    name])
    start = timed([*base, "start", name])
    waited = time.perf_counter()
    pid = int(pid_file.read_text())
    # We are a subreaper: the container's init is our child once its parent exits.
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.0005)
    waited = time.perf_counter() - waited
    delete = timed([*base, "delete", name])
    pid_file.unlink()
    return {"create+start+wait+delete": create + start + waited + delete,
            "  create": create, "  start": start, "  delete": delete}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root")
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    private_plain_cgroup_v1()
    found = runtimes()
    measures = (run_true, lifecycle)
    results: dict[str, dict[str, list[float]]] = {}
    # The floor under every dockyard-runc command: the interpreter starting and ending.
    bare_python = [str(PROJECT / ".venv" / "bin" / "python"), "-IS", "-c",
                   "import posix; posix._exit(0)"]
    floor: list[float] = []
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        bundle = make_bundle(Path(tmp) / "bundle")
        for name in found:
            (Path(tmp) / name).mkdir()
        for round_number in range(args.rounds + 2):
            for measure in measures:
                for name, binary in found.items():
                    rows = measure(binary, Path(tmp) / name, bundle, f"bench-{round_number}")
                    if round_number >= 2:  # two warm-up rounds
                        for row, seconds in rows.items():
                            results.setdefault(row, {}).setdefault(name, []).append(seconds)
            seconds = timed(bare_python)
            if round_number >= 2:
                floor.append(seconds)
    print_table(results, args.rounds, args.markdown)
    print(f"\nCPython starting and ending alone (python -IS, nothing imported): "
          f"{statistics.median(floor) * 1000:.1f} ms")


def print_table(results: dict[str, dict[str, list[float]]], rounds: int, markdown: bool) -> None:
    names = list(next(iter(results.values())))
    header = [f"operation (median of {rounds}, ms)", *names, "dockyard-runc / runc"]
    lines = [header]
    for row, per_runtime in results.items():
        medians = {n: statistics.median(v) * 1000 for n, v in per_runtime.items()}
        lines.append([row, *(f"{medians[n]:.1f}" for n in names),
                      f"{medians['dockyard-runc'] / medians['runc']:.2f}"])
    if markdown:
        print("| " + " | ".join(lines[0]) + " |")
        print("|" + "---|" * len(lines[0]))
        for line in lines[1:]:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        for line in lines:
            print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)))


if __name__ == "__main__":
    main()
