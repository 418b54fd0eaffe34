"""The daemon's rules as one native nftables table of its own (`--firewall-backend nftables`).

The same rules as the iptables backend (firewall.py), in `table ip <prefix, lower case>`:

  forward      filter hook forward, priority filter (0): isolation between our bridges,
               --internal drops, accept our bridges' traffic
  prerouting   nat hook prerouting, priority dstnat (-100)  -> published for local destinations
  output       nat hook output, priority -100               -> published for local destinations
  published    published ports (with `ip daddr` when a port is bound to one address)
  postrouting  nat hook postrouting, priority srcnat (100): masquerade out of a bridge and
               of loopback clients (route_localnet), then -> hairpin
  hairpin      a container reaching its own published port through a host address

Every change is ONE nftables transaction (through libnftables in-process, which is what
`nft -f -` runs, or the binary when the library does not load): the kernel applies all of it
or none, and each transaction waits for an RCU grace period (~10 ms), so the number of
transactions is what costs. `table` + `flush table` + the definitions make the text idempotent
(the table is made if missing, emptied, refilled, atomically), so the table is always
rebuilt whole from the engine's state, a change of published ports included.

Limitation (as Docker's own nftables backend): nftables runs every base chain of a hook, in
priority order, and an `accept` ends the packet's walk through OUR table only. A packet we
accept in `forward` is still dropped by another table's chain at that hook that drops it
(iptables' FORWARD policy DROP, which dockerd sets, or a host firewall's forward chain).
Such a host needs its own rule to accept our bridges' traffic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import subprocess
import threading

from .firewall import BridgeRules, FirewallError, PortRule

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}\Z")
# Tables of other tools that `flush table` must never reach: iptables-nft's, and Docker's
# own nftables backend's.
_OTHERS = {"filter", "nat", "mangle", "raw", "security", "docker-bridges"}


def table_name(prefix: str) -> str:
    """Our table's name: the daemon's firewall prefix in lower case (DOCKYARD -> dockyard)."""
    if not _NAME.match(prefix):
        raise FirewallError(f"invalid firewall prefix {prefix!r}: use letters, digits, '_' "
                            "and '-' (starting with a letter or '_')")
    if prefix.lower() in _OTHERS:
        raise FirewallError(f"invalid firewall prefix {prefix!r}: table ip {prefix.lower()} "
                            "belongs to another tool (iptables or Docker)")
    return prefix.lower()


def _quoted(name: str) -> str:
    return '"' + name + '"'


def _others(bridges: list[BridgeRules], name: str) -> str:
    names = [_quoted(b.bridge) for b in bridges if b.bridge != name]
    return names[0] if len(names) == 1 else "{ " + ", ".join(names) + " }"


class NftablesFirewall:
    backend = "nftables"

    def __init__(self, prefix: str = "DOCKYARD", enabled: bool = True) -> None:
        self.prefix = prefix
        self.enabled = enabled
        self.table = table_name(prefix)

    # -- rendering ------------------------------------------------------------------------

    def forward_rules(self, bridges: list[BridgeRules]) -> list[str]:
        rules: list[str] = []
        for b in bridges:
            if len(bridges) > 1:
                # Nothing passes between two of our bridges (Docker's isolation chains).
                rules.append(f"iifname {_quoted(b.bridge)} oifname {_others(bridges, b.bridge)}"
                             " drop")
        for b in bridges:
            name = _quoted(b.bridge)
            if b.internal:
                rules += [f"iifname {name} oifname != {name} drop",
                          f"oifname {name} iifname != {name} drop"]
            rules.append(f"iifname {name} oifname {name} accept")
            if not b.internal:
                rules += [f"oifname {name} ct state established,related accept",
                          f"oifname {name} ct status dnat accept",
                          f"iifname {name} oifname != {name} accept"]
        return rules

    def postrouting_rules(self, bridges: list[BridgeRules]) -> list[str]:
        rules: list[str] = []
        for b in bridges:
            if b.internal:
                continue
            name = _quoted(b.bridge)
            # A host client (127.0.0.1 included, DNAT'd in output) must not reach the
            # container with a source address the container cannot answer.
            rules.append(f"oifname {name} fib saddr type local masquerade")
            if b.masquerade:
                rules.append(f"ip saddr {b.subnet} oifname != {name} masquerade")
        rules.append("jump hairpin")
        return rules

    @staticmethod
    def port_rules(ports: list[PortRule]) -> tuple[list[str], list[str]]:
        """The `published` and `hairpin` chains' rules."""
        dnat: list[str] = []
        hairpin: list[str] = []
        for r in ports:
            destination = f"ip daddr {r.host_ip} " if r.host_ip not in ("", "0.0.0.0") else ""
            dnat.append(f"{destination}{r.proto} dport {r.host_port} "
                        f"dnat to {r.address}:{r.port}")
            hairpin.append(f"ip saddr {r.address} ip daddr {r.address} {r.proto} dport {r.port} "
                           "masquerade")
        return dnat, hairpin

    def render(self, bridges: list[BridgeRules], ports: list[PortRule]) -> str:
        """The `nft -f` input that makes our table exactly this, whatever was there."""
        t = self.table
        dnat, hairpin = self.port_rules(ports)
        lines = [f"table ip {t}", f"flush table ip {t}", f"table ip {t} {{"]
        lines += _chain("forward", "type filter hook forward priority filter; policy accept;",
                        self.forward_rules(bridges))
        lines += _chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;",
                        ["fib daddr type local jump published"])
        lines += _chain("output", "type nat hook output priority -100; policy accept;",
                        ["fib daddr type local jump published"])
        lines += _chain("published", "", dnat)
        lines += _chain("postrouting", "type nat hook postrouting priority srcnat; "
                        "policy accept;", self.postrouting_rules(bridges))
        lines += _chain("hairpin", "", hairpin)
        lines.append("}")
        return "\n".join(lines) + "\n"

    def render_teardown(self) -> str:
        # Declaring the table first makes the delete succeed when it is already gone.
        return f"table ip {self.table}\ndelete table ip {self.table}\n"

    # -- applying -------------------------------------------------------------------------

    def apply(self, bridges: list[BridgeRules], ports: list[PortRule],
              check_jumps: bool = False, ports_only: bool = False) -> None:
        """The whole table, every time: `check_jumps` and `ports_only` (the iptables
        backend's savings) change nothing here. Rewriting only the two port chains was
        measured no faster (5 bridges, 10 ports: 12.4 against 12.2 ms in-process): the cost
        is the one transaction, not the size of the text, and a whole rewrite also repairs
        a table someone emptied or deleted."""
        del check_jumps, ports_only
        if not self.enabled:
            return
        run_nft(self.render(bridges, ports))

    def teardown(self) -> None:
        """Removes our table (every chain and rule in it) in one transaction."""
        if not self.enabled:
            return
        run_nft(self.render_teardown())


def _chain(name: str, base: str, rules: list[str]) -> list[str]:
    lines = [f"\tchain {name} {{"]
    if base:
        lines.append(f"\t\t{base}")
    lines += [f"\t\t{rule}" for rule in rules]
    lines.append("\t}")
    return lines


def run_nft(text: str, check_only: bool = False) -> None:
    """One nftables transaction: the kernel applies all of `text` or none of it (with
    `check_only`, parsed and validated by the kernel but not committed). In-process through
    libnftables (what `nft -f` itself calls) when it loads, else `nft -f -`: the same
    transaction without a process start (~2.5 ms of the ~16 ms a change costs)."""
    lib = _libnftables()
    if lib is not None:
        _run_in_process(lib, text, check_only)
        return
    command = ["nft", "-c", "-f", "-"] if check_only else ["nft", "-f", "-"]
    try:
        result = subprocess.run(command, input=text, capture_output=True, text=True,
                                check=False)
    except FileNotFoundError:
        raise FirewallError("nft: not found (install nftables, or start the daemon with "
                            "--firewall-backend iptables or --iptables=false)") from None
    if result.returncode != 0:
        raise FirewallError(f"nft: {result.stderr.strip()}")


# libnftables, loaded at the first transaction (None when it does not load). USE_LIBRARY =
# False makes run_nft use the nft binary (the tests run both paths).
USE_LIBRARY = True
_lib: ctypes.CDLL | None = None
_lib_tried = False
_lib_lock = threading.Lock()


def _libnftables() -> ctypes.CDLL | None:
    global _lib, _lib_tried
    if not USE_LIBRARY:
        return None
    if not _lib_tried:
        _lib_tried = True
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("nftables") or "libnftables.so.1")
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_set_dry_run.argtypes = [ctypes.c_void_p, ctypes.c_bool]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            _lib = lib
        except (OSError, AttributeError):
            _lib = None
    return _lib


def _run_in_process(lib: ctypes.CDLL, text: str, check_only: bool) -> None:
    # One context per call (its cache of the ruleset is then never stale); the library
    # keeps some state of its own, so calls do not overlap.
    with _lib_lock:
        ctx = lib.nft_ctx_new(0)
        if not ctx:
            raise FirewallError("nft: cannot create a libnftables context")
        try:
            lib.nft_ctx_buffer_output(ctx)
            lib.nft_ctx_buffer_error(ctx)
            lib.nft_ctx_set_dry_run(ctx, check_only)
            rc = lib.nft_run_cmd_from_buffer(ctx, text.encode())
            error = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
        finally:
            lib.nft_ctx_free(ctx)
    if rc != 0:
        raise FirewallError(f"nft: {error.strip() or 'failed'}")
