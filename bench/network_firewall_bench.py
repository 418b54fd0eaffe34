"""The daemon's two firewall backends side by side: the time to apply the same state (N
bridges, M published ports) through iptables (`iptables-restore --noflush`, what dockerd
uses; the filter and nat tables are one commit each) and through nftables (one `nft -f -`,
one commit), rows alternating round by round, medians: the first apply on a host without
our rules (daemon start), a re-apply over them with one port more or less (a container
start or stop with `-p`; the iptables backend then writes nat only), and teardown.

Nothing is sent on the network: the rules name bridges that do not exist. Chains and the
table use a prefix of this script's own and are removed at the end.

With --daemons: two dockyardd instead, one per backend (each with its own data root, bridge
and prefix), and `run --rm -p PORT:80 IMAGE true` timed on each, alternating; both daemons
stop cleanly at the end, which removes their bridges and rules.

usage: .venv/bin/python bench/network_firewall_bench.py [--rounds 30] [--bridges 5] [--ports 10]
       [--nft-binary] [--markdown] [--daemons]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dockyard.network import BridgeRules, PortRule, _nftables, make_firewall  # noqa: E402


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def daemons(rounds: int, markdown: bool) -> None:
    import tempfile

    from engine_bench import BIN, FIXTURE, IMAGE, Engine, remove_cgroup_parents
    from network_bench import free_port

    from dockyard.network import bridge

    tag = uuid.uuid4().hex[:6]
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="dockyard-firewall-bench-") as tmp:
        engines = []
        for backend in ("iptables", "nftables"):
            root = Path(tmp) / backend
            root.mkdir()
            (root / "daemon.json").write_text("{}")
            engines.append(Engine(backend, root, [
                str(BIN / "dockyardd"), "-H", f"unix://{root}/d.sock", "--data-root",
                str(root / "data"), "--exec-root", str(root / "exec"), "--config-file",
                str(root / "daemon.json"), "--cgroup-parent", f"/dyfb-{tag}-{backend}",
                "--bridge", f"dyfb{tag}{backend[0]}", "--firewall-prefix",
                f"DYFB{tag.upper()}{backend[0].upper()}", "--firewall-backend", backend],
                root / "d.sock"))
        try:
            for engine in engines:
                engine.start()
                engine.docker("load", "-i", str(FIXTURE))
                engine.docker("run", "--rm", "-p", f"{free_port()}:80", IMAGE, "true")
            for _ in range(rounds):
                for engine in engines:
                    row = f"run --rm -p PORT:80 IMAGE true, {engine.name}"
                    rows.setdefault(row, []).append(_timed(
                        lambda e=engine: e.docker("run", "--rm", "-p", f"{free_port()}:80",
                                                  IMAGE, "true")))
        finally:
            for engine in engines:
                engine.stop()
                bridge.delete_link(engine.argv[engine.argv.index("--bridge") + 1])
                prefix = engine.argv[engine.argv.index("--firewall-prefix") + 1]
                make_firewall(prefix, True, engine.name).teardown()
                remove_cgroup_parents(f"dyfb-{tag}-{engine.name}")
    print(f"two dockyardd, {rounds} rounds, medians (ms)")
    if markdown:
        print("| operation | ms |\n|---|---|")
    for name, values in rows.items():
        value = statistics.median(values)
        print(f"| {name} | {value:.1f} |" if markdown else f"{name:48} {value:8.1f}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--bridges", type=int, default=5)
    parser.add_argument("--ports", type=int, default=10)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--nft-binary", action="store_true",
                        help="run `nft -f -` instead of libnftables in-process")
    parser.add_argument("--daemons", action="store_true",
                        help="time `run --rm -p` on two daemons, one per backend")
    args = parser.parse_args()
    _nftables.USE_LIBRARY = not args.nft_binary
    if args.daemons:
        daemons(args.rounds, args.markdown)
        return 0
    tag = uuid.uuid4().hex[:6].upper()
    bridges = [BridgeRules(f"dyfb{i}", f"10.213.{100 + i}.0/24", i % 3 == 2)
               for i in range(args.bridges)]
    ports = [PortRule("tcp", "", 30000 + i, f"10.213.100.{i + 2}", 80)
             for i in range(args.ports)]
    ipt = make_firewall(f"DYFB{tag}", True, "iptables")
    nft = make_firewall(f"DYFB{tag}", True, "nftables")
    other = ports[1:]       # each re-apply changes the state: one port more or less
    rows: dict[str, list[float]] = {
        "iptables: first apply (nothing there)": [], "nftables: first apply (nothing there)": [],
        "iptables: re-apply (filter + nat)": [], "iptables: re-apply, ports only (nat)": [],
        "nftables: re-apply (whole table)": [],
        "iptables: teardown": [], "nftables: teardown": []}
    try:
        for _ in range(args.rounds):
            rows["iptables: first apply (nothing there)"].append(
                _timed(lambda: ipt.apply(bridges, ports, check_jumps=True)))
            rows["nftables: first apply (nothing there)"].append(
                _timed(lambda: nft.apply(bridges, ports, check_jumps=True)))
            for state in (other, ports):
                rows["iptables: re-apply (filter + nat)"].append(
                    _timed(lambda: ipt.apply(bridges, state)))           # noqa: B023
                rows["iptables: re-apply, ports only (nat)"].append(
                    _timed(lambda: ipt.apply(bridges, state, ports_only=True)))  # noqa: B023
                rows["nftables: re-apply (whole table)"].append(
                    _timed(lambda: nft.apply(bridges, state, ports_only=True)))  # noqa: B023
            rows["iptables: teardown"].append(_timed(ipt.teardown))
            rows["nftables: teardown"].append(_timed(nft.teardown))
    finally:
        ipt.teardown()
        nft.teardown()
    how = "nft binary" if args.nft_binary else "libnftables in-process"
    print(f"{args.bridges} bridges, {args.ports} ports, {args.rounds} rounds, nftables through "
          f"{how}, medians (ms)")
    if args.markdown:
        print("| operation | ms |\n|---|---|")
    for name, values in rows.items():
        value = statistics.median(values)
        print(f"| {name} | {value:.1f} |" if args.markdown else f"{name:40} {value:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
