"""The nftables backend without the kernel: the table's text for bridges, ports, --internal
and host addresses, idempotence, teardown; backend detection with a fake PATH; the daemon's
flag and daemon.json key; `docker info`'s FirewallBackend."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from dockyard.api.system import _firewall_backend
from dockyard.daemon.main import build_options, parse_args
from dockyard.network import BridgeRules, Firewall, FirewallError, PortRule, make_firewall
from dockyard.network._nftables import NftablesFirewall, table_name
from dockyard.network.firewall import detect_backend, resolve_backend

BRIDGES = [BridgeRules("br-a", "10.5.0.0/16", False),
           BridgeRules("br-int", "10.6.0.0/24", True),
           BridgeRules("br-nomasq", "10.7.0.0/24", False, masquerade=False)]
PORTS = [PortRule("tcp", "", 8080, "10.5.0.2", 80),
         PortRule("udp", "0.0.0.0", 5353, "10.5.0.3", 53),
         PortRule("tcp", "127.0.0.1", 9090, "10.5.0.4", 8080)]


def _chain(text: str, name: str) -> list[str]:
    """The rules (and base chain line) of one chain in the rendered text."""
    lines = text.splitlines()
    start = lines.index(f"\tchain {name} {{")
    end = lines.index("\t}", start)
    return [line.strip() for line in lines[start + 1:end]]


def test_table_name_is_the_prefix_in_lower_case() -> None:
    assert table_name("DOCKYARD") == "dockyard"
    assert table_name("DYT1a2b3c") == "dyt1a2b3c"
    assert NftablesFirewall("DYX").table == "dyx"
    for bad in ("", "1abc", "a b", "x;flush ruleset", "a\"b"):
        with pytest.raises(FirewallError, match="invalid firewall prefix"):
            table_name(bad)
    # Never a table of iptables-nft or Docker: applying would flush it.
    for other in ("NAT", "filter", "Mangle", "raw", "SECURITY", "DOCKER-BRIDGES"):
        with pytest.raises(FirewallError, match="belongs to another tool"):
            NftablesFirewall(other)


def test_render_is_one_idempotent_transaction_for_our_table_only() -> None:
    text = NftablesFirewall("DYX").render(BRIDGES, PORTS)
    lines = text.splitlines()
    # Made if missing, emptied, refilled: the same text applies on any prior state.
    assert lines[:3] == ["table ip dyx", "flush table ip dyx", "table ip dyx {"]
    assert lines[-1] == "}"
    assert "ruleset" not in text
    assert all(not line.startswith(("table", "flush", "delete")) or " dyx" in line
               for line in lines)
    assert text == NftablesFirewall("DYX").render(BRIDGES, PORTS)


def test_base_chains_hook_at_the_priorities_iptables_uses() -> None:
    text = NftablesFirewall("DYX").render(BRIDGES, PORTS)
    assert _chain(text, "forward")[0] == \
        "type filter hook forward priority filter; policy accept;"
    assert _chain(text, "prerouting") == [
        "type nat hook prerouting priority dstnat; policy accept;",
        "fib daddr type local jump published"]
    assert _chain(text, "output") == [
        "type nat hook output priority -100; policy accept;",
        "fib daddr type local jump published"]
    assert _chain(text, "postrouting")[0] == \
        "type nat hook postrouting priority srcnat; policy accept;"
    assert _chain(text, "postrouting")[-1] == "jump hairpin"


def test_forward_isolates_our_bridges_and_drops_internal_traffic() -> None:
    forward = _chain(NftablesFirewall("DYX").render(BRIDGES, []), "forward")
    isolation = forward[1:4]
    assert isolation == [
        'iifname "br-a" oifname { "br-int", "br-nomasq" } drop',
        'iifname "br-int" oifname { "br-a", "br-nomasq" } drop',
        'iifname "br-nomasq" oifname { "br-a", "br-int" } drop']
    assert 'iifname "br-int" oifname != "br-int" drop' in forward
    assert 'oifname "br-int" iifname != "br-int" drop' in forward
    assert 'iifname "br-int" oifname "br-int" accept' in forward
    # An internal bridge accepts nothing from or to the outside.
    assert not [r for r in forward if '"br-int"' in r and "accept" in r and "oifname !=" in r]
    for name in ("br-a", "br-nomasq"):
        assert f'oifname "{name}" ct state established,related accept' in forward
        assert f'oifname "{name}" ct status dnat accept' in forward
        assert f'iifname "{name}" oifname != "{name}" accept' in forward
    # An accept ends the walk through our table: isolation comes before every accept, an
    # internal bridge's drops before its own accept.
    first_accept = min(i for i, r in enumerate(forward) if r.endswith(" accept"))
    assert max(forward.index(r) for r in isolation) < first_accept
    assert forward.index('oifname "br-int" iifname != "br-int" drop') < \
        forward.index('iifname "br-int" oifname "br-int" accept')


def test_one_bridge_needs_no_isolation_rule() -> None:
    forward = _chain(NftablesFirewall("DYX").render(BRIDGES[:1], []), "forward")
    assert not [r for r in forward if r.endswith("drop")]
    single = _chain(NftablesFirewall("DYX").render(BRIDGES[:2], []), "forward")
    assert 'iifname "br-a" oifname "br-int" drop' in single


def test_masquerade_out_of_non_internal_bridges_and_of_loopback_clients() -> None:
    post = _chain(NftablesFirewall("DYX").render(BRIDGES, []), "postrouting")
    assert 'ip saddr 10.5.0.0/16 oifname != "br-a" masquerade' in post
    assert 'oifname "br-a" fib saddr type local masquerade' in post
    assert not [r for r in post if "br-int" in r or "10.6.0.0" in r]
    # enable_ip_masquerade=false: no outbound NAT, host clients still work.
    assert not [r for r in post if "10.7.0.0" in r]
    assert 'oifname "br-nomasq" fib saddr type local masquerade' in post


def test_published_ports_dnat_and_hairpin() -> None:
    text = NftablesFirewall("DYX").render(BRIDGES, PORTS)
    assert _chain(text, "published") == [
        "tcp dport 8080 dnat to 10.5.0.2:80",
        "udp dport 5353 dnat to 10.5.0.3:53",
        "ip daddr 127.0.0.1 tcp dport 9090 dnat to 10.5.0.4:8080"]
    assert _chain(text, "hairpin") == [
        "ip saddr 10.5.0.2 ip daddr 10.5.0.2 tcp dport 80 masquerade",
        "ip saddr 10.5.0.3 ip daddr 10.5.0.3 udp dport 53 masquerade",
        "ip saddr 10.5.0.4 ip daddr 10.5.0.4 tcp dport 8080 masquerade"]


def test_no_bridges_and_no_ports_still_declare_every_chain() -> None:
    text = NftablesFirewall("DYX").render([], [])
    for name in ("forward", "prerouting", "output", "published", "postrouting", "hairpin"):
        assert f"\tchain {name} {{" in text
    assert _chain(text, "published") == [] and _chain(text, "hairpin") == []
    assert _chain(text, "forward") == [
        "type filter hook forward priority filter; policy accept;"]


def test_teardown_deletes_the_table_even_if_it_is_gone() -> None:
    assert NftablesFirewall("DYX").render_teardown() == "table ip dyx\ndelete table ip dyx\n"


def test_apply_and_teardown_run_one_nft_each(monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.network import _nftables

    runs: list[str] = []
    monkeypatch.setattr(_nftables, "run_nft", runs.append)
    firewall = NftablesFirewall("DYX")
    firewall.apply(BRIDGES, PORTS, check_jumps=True)
    firewall.apply(BRIDGES, PORTS[:1], ports_only=True)
    firewall.teardown()
    assert len(runs) == 3
    assert runs[0] == firewall.render(BRIDGES, PORTS)
    assert runs[1] == firewall.render(BRIDGES, PORTS[:1])
    assert runs[2].startswith("table ip dyx\ndelete")
    disabled = NftablesFirewall("DYX", enabled=False)
    disabled.apply(BRIDGES, PORTS)
    disabled.teardown()
    assert len(runs) == 3


def test_missing_nft_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dockyard.network import _nftables

    monkeypatch.setattr(_nftables, "USE_LIBRARY", False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(FirewallError, match="nft: not found"):
        _nftables.run_nft("table ip dyx\n")


# -- detection and selection ----------------------------------------------------------------


def _fake_path(tmp_path: Path, *tools: str) -> str:
    directory = tmp_path / "bin"
    directory.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        path = directory / tool
        path.write_text("#!/bin/sh\nexit 0\n")
        path.chmod(0o755)
    return str(directory)


def test_detection_prefers_iptables_then_nft(tmp_path: Path) -> None:
    assert detect_backend(_fake_path(tmp_path / "a", "iptables-restore", "iptables-save",
                                     "nft")) == "iptables"
    assert detect_backend(_fake_path(tmp_path / "b", "nft")) == "nftables"
    # iptables-restore alone is not enough (the iptables backend needs both tools).
    assert detect_backend(_fake_path(tmp_path / "c", "iptables-restore", "nft")) == "nftables"
    assert detect_backend(_fake_path(tmp_path / "d", "iptables-restore")) == ""
    assert detect_backend(_fake_path(tmp_path / "e")) == ""


def test_resolve_backend(tmp_path: Path) -> None:
    nothing = _fake_path(tmp_path / "none")
    assert resolve_backend("nftables", True, nothing) == "nftables"
    assert resolve_backend("iptables", True, nothing) == "iptables"
    assert resolve_backend("", True, _fake_path(tmp_path / "n", "nft")) == "nftables"
    with pytest.raises(FirewallError, match="no firewall backend found.*--iptables=false"):
        resolve_backend("", True, nothing)
    assert resolve_backend("", False, nothing) == ""
    with pytest.raises(FirewallError, match="invalid firewall backend 'pf'"):
        resolve_backend("pf", True)


def test_make_firewall_dispatches_on_the_backend(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    nft = make_firewall("DYX", True, "nftables")
    assert isinstance(nft, NftablesFirewall)
    assert (nft.prefix, nft.enabled, nft.backend, nft.table) == ("DYX", True, "nftables", "dyx")
    ipt = make_firewall("DYX", True, "iptables")
    assert isinstance(ipt, Firewall) and ipt.backend == "iptables"
    monkeypatch.setenv("PATH", _fake_path(tmp_path / "n", "nft"))
    assert isinstance(make_firewall("DYX", True, ""), NftablesFirewall)
    monkeypatch.setenv("PATH", _fake_path(tmp_path / "none"))
    with pytest.raises(FirewallError):
        make_firewall("DYX", True, "")
    off = make_firewall("DYX", False, "")
    assert not off.enabled
    off.apply(BRIDGES, PORTS)       # nothing to run, no error
    off.teardown()


def test_daemon_flag_and_config_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = ["--data-root", str(tmp_path / "d"), "--exec-root", str(tmp_path / "e")]
    options = build_options(parse_args([*base, "--firewall-backend", "nftables"]), {})[0]
    assert options.firewall_backend == "nftables"
    options = build_options(parse_args(base), {"firewall-backend": "nftables"})[0]
    assert options.firewall_backend == "nftables"
    # The flag wins over daemon.json, as for every other setting.
    options = build_options(parse_args([*base, "--firewall-backend", "iptables"]),
                            {"firewall-backend": "nftables"})[0]
    assert options.firewall_backend == "iptables"
    with pytest.raises(SystemExit):
        parse_args([*base, "--firewall-backend", "pf"])
    with pytest.raises(SystemExit, match="invalid firewall backend 'pf'"):
        build_options(parse_args(base), {"firewall-backend": "pf"})
    monkeypatch.setenv("PATH", _fake_path(tmp_path / "n", "nft"))
    assert build_options(parse_args(base), {})[0].firewall_backend == "nftables"
    monkeypatch.setenv("PATH", _fake_path(tmp_path / "none"))
    with pytest.raises(SystemExit, match="no firewall backend found"):
        build_options(parse_args(base), {})
    assert build_options(parse_args([*base, "--iptables=false"]), {})[0].firewall_backend == ""
    assert os.environ["PATH"].endswith("bin")


def test_info_reports_the_backend() -> None:
    def engine(firewall: object) -> SimpleNamespace:
        return SimpleNamespace(networks=SimpleNamespace(firewall=firewall))

    assert _firewall_backend(engine(NftablesFirewall("DYX"))) == {
        "FirewallBackend": {"Driver": "nftables"}}
    assert _firewall_backend(engine(Firewall("DYX"))) == {
        "FirewallBackend": {"Driver": "iptables"}}
    assert _firewall_backend(engine(Firewall("DYX", enabled=False))) == {}
    assert _firewall_backend(SimpleNamespace()) == {}
