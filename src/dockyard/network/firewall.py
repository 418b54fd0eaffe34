"""The daemon's iptables rules, in chains of its own named by a per-daemon prefix.

The chains are rebuilt whole from the engine's state on every change, in one
`iptables-restore --noflush` (declaring a chain there empties it first): the rules can
never drift from the state, and a restart restores them the same way. Built-in chains only
get one jump each into ours, added once if missing.

  filter  FORWARD     -> P-FORWARD       accept our bridges' traffic, --internal drops
          P-ISOLATION-1/2                 drop traffic between two of our bridges
  nat     PREROUTING, OUTPUT (to local addresses) -> P-DNAT   published ports
          POSTROUTING -> P-POSTROUTING    masquerade out of a bridge, loopback clients,
                                          hairpin

`make_firewall` picks this backend or the nftables one (_nftables.py: the same rules in a
table of the daemon's own), by --firewall-backend or detected as dockerd does.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._nftables import NftablesFirewall

BACKENDS = ("iptables", "nftables")


@dataclass(frozen=True)
class BridgeRules:
    bridge: str
    subnet: str
    internal: bool
    masquerade: bool = True


@dataclass(frozen=True)
class PortRule:
    proto: str          # tcp | udp
    host_ip: str        # "" or "0.0.0.0" for every address
    host_port: int
    address: str        # the container's address
    port: int           # the container's port


class FirewallError(RuntimeError):
    pass


class Firewall:
    backend = "iptables"

    def __init__(self, prefix: str = "DOCKYARD", enabled: bool = True) -> None:
        self.prefix = prefix
        self.enabled = enabled

    @property
    def chains(self) -> dict[str, list[str]]:
        p = self.prefix
        return {"filter": [f"{p}-FORWARD", f"{p}-ISOLATION-1", f"{p}-ISOLATION-2"],
                "nat": [f"{p}-DNAT", f"{p}-POSTROUTING"]}

    def jumps(self) -> dict[str, list[str]]:
        """The rules in built-in chains that lead into ours (iptables-save's spelling)."""
        p = self.prefix
        return {"filter": [f"-A FORWARD -j {p}-FORWARD"],
                "nat": [f"-A PREROUTING -m addrtype --dst-type LOCAL -j {p}-DNAT",
                        f"-A OUTPUT -m addrtype --dst-type LOCAL -j {p}-DNAT",
                        f"-A POSTROUTING -j {p}-POSTROUTING"]}

    def render(self, bridges: list[BridgeRules], ports: list[PortRule],
               saved: str | None = None, tables: tuple[str, ...] = ("filter", "nat")) -> str:
        """The iptables-restore input that makes our chains exactly this. With `saved`
        (iptables-save's output) the jumps missing from it are added too. Only `tables`
        are written: each table is one nftables commit, which waits for an RCU grace
        period (~10 ms), and a published port changes only nat."""
        p = self.prefix
        filter_rules = [f"-A {p}-FORWARD -j {p}-ISOLATION-1"]
        nat_rules: list[str] = []
        for b in bridges:
            if b.internal:
                filter_rules += [f"-A {p}-FORWARD -i {b.bridge} ! -o {b.bridge} -j DROP",
                                 f"-A {p}-FORWARD -o {b.bridge} ! -i {b.bridge} -j DROP"]
            filter_rules.append(f"-A {p}-FORWARD -i {b.bridge} -o {b.bridge} -j ACCEPT")
            filter_rules += [
                f"-A {p}-ISOLATION-1 -i {b.bridge} ! -o {b.bridge} -j {p}-ISOLATION-2",
                f"-A {p}-ISOLATION-2 -o {b.bridge} -j DROP"]
            if not b.internal:
                filter_rules += [
                    f"-A {p}-FORWARD -o {b.bridge} -m conntrack --ctstate RELATED,ESTABLISHED"
                    " -j ACCEPT",
                    f"-A {p}-FORWARD -o {b.bridge} -m conntrack --ctstate DNAT -j ACCEPT",
                    f"-A {p}-FORWARD -i {b.bridge} ! -o {b.bridge} -j ACCEPT"]
                nat_rules.append(f"-A {p}-POSTROUTING -o {b.bridge} -m addrtype --src-type "
                                 "LOCAL -j MASQUERADE")
                if b.masquerade:
                    nat_rules.append(f"-A {p}-POSTROUTING -s {b.subnet} ! -o {b.bridge} "
                                     "-j MASQUERADE")
        for r in ports:
            destination = f" -d {r.host_ip}/32" if r.host_ip not in ("", "0.0.0.0") else ""
            nat_rules.append(f"-A {p}-DNAT{destination} -p {r.proto} -m {r.proto} --dport "
                             f"{r.host_port} -j DNAT --to-destination {r.address}:{r.port}")
            nat_rules.append(f"-A {p}-POSTROUTING -s {r.address}/32 -d {r.address}/32 "
                             f"-p {r.proto} -m {r.proto} --dport {r.port} -j MASQUERADE")
        lines: list[str] = []
        for table, rules in (("filter", filter_rules), ("nat", nat_rules)):
            if table not in tables:
                continue
            lines.append(f"*{table}")
            lines += [f":{chain} - [0:0]" for chain in self.chains[table]]
            lines += rules
            if saved is not None:
                # FORWARD's jump goes first: a DROP policy or rule of another tool (dockerd
                # sets one) must not see our bridges' traffic before we do.
                lines += [j.replace("-A FORWARD", "-I FORWARD 1", 1)
                          for j in self.jumps()[table] if j not in saved]
            lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    def render_teardown(self, saved: str) -> str:
        lines: list[str] = []
        for table in ("filter", "nat"):
            lines.append(f"*{table}")
            present = [c for c in self.chains[table] if f":{c} " in saved]
            lines += [f":{chain} - [0:0]" for chain in present]   # empties them
            lines += ["-D" + j[2:] for j in self.jumps()[table] if j in saved]
            lines += [f"-X {chain}" for chain in present]
            lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    # -- applying -------------------------------------------------------------------------

    def apply(self, bridges: list[BridgeRules], ports: list[PortRule],
              check_jumps: bool = False, ports_only: bool = False) -> None:
        if not self.enabled:
            return
        saved = _save() if check_jumps else None
        tables = ("nat",) if ports_only and not check_jumps else ("filter", "nat")
        _restore(self.render(bridges, ports, saved, tables))

    def teardown(self) -> None:
        """Removes our chains and the jumps into them."""
        if not self.enabled:
            return
        saved = _save()
        if any(f":{c} " in saved for chains in self.chains.values() for c in chains):
            _restore(self.render_teardown(saved))


def detect_backend(path: str | None = None) -> str:
    """As dockerd: iptables when its restore and save tools are on PATH, else nftables when
    `nft` is; "" when neither is."""
    if shutil.which("iptables-restore", path=path) and shutil.which("iptables-save", path=path):
        return "iptables"
    return "nftables" if shutil.which("nft", path=path) else ""


def resolve_backend(choice: str = "", enabled: bool = True, path: str | None = None) -> str:
    """The backend to use: `choice` (--firewall-backend) or the detected one. Without any
    tool it is an error unless the firewall is off (--iptables=false), then ""."""
    if choice and choice not in BACKENDS:
        raise FirewallError(f"invalid firewall backend {choice!r}: expected iptables or "
                            "nftables")
    found = choice or detect_backend(path)
    if not found and enabled:
        raise FirewallError("no firewall backend found: neither iptables-restore and "
                            "iptables-save nor nft is on PATH (install iptables or nftables, "
                            "or start the daemon with --iptables=false)")
    return found


def make_firewall(prefix: str = "DOCKYARD", enabled: bool = True,
                  backend: str = "") -> Firewall | NftablesFirewall:
    """The daemon's firewall for `backend` ("" = detected); both have the same interface:
    apply(bridges, ports, check_jumps, ports_only), teardown(), enabled, prefix, backend."""
    if resolve_backend(backend, enabled) == "nftables":
        from ._nftables import NftablesFirewall

        return NftablesFirewall(prefix, enabled)
    return Firewall(prefix, enabled)


def _save() -> str:
    result = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True,
                            check=False)
    nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True,
                         check=False)
    if result.returncode != 0 or nat.returncode != 0:
        raise FirewallError(f"iptables-save: {result.stderr.strip() or nat.stderr.strip()}")
    return result.stdout + nat.stdout


def _restore(text: str) -> None:
    result = subprocess.run(["iptables-restore", "--noflush", "-w"], input=text,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FirewallError(f"iptables-restore: {result.stderr.strip()}")
