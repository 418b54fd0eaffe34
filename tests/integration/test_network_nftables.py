"""The nftables backend against the real kernel and nft binary, without a daemon: the
rendered text passes `nft -c`, the table is made with its base chains at the expected hooks
and priorities, applying twice gives the same table, a port change rewrites it, and teardown
removes it (and is harmless when it is already gone). Nothing here sends a packet."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from dockyard.network import BridgeRules, FirewallError, PortRule, _nftables, make_firewall
from dockyard.network._nftables import NftablesFirewall, run_nft
from tests.conftest import require_root


def _tables() -> list[str]:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def _listing(table: str) -> str:
    return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True,
                          text=True, check=True).stdout


def _chains(table: str) -> dict[str, dict]:
    data = json.loads(subprocess.run(["nft", "-j", "list", "table", "ip", table],
                                     capture_output=True, text=True, check=True).stdout)
    return {item["chain"]["name"]: item["chain"] for item in data["nftables"]
            if "chain" in item}


@pytest.fixture(params=["library", "binary"])
def firewall(request: pytest.FixtureRequest,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[NftablesFirewall]:
    """Both ways of running a transaction: libnftables in-process and `nft -f -`."""
    require_root()
    monkeypatch.setattr(_nftables, "USE_LIBRARY", request.param == "library")
    if request.param == "library":
        assert _nftables._libnftables() is not None, "libnftables does not load"
    tag = uuid.uuid4().hex[:6]
    instance = make_firewall(f"DYI{tag.upper()}", True, "nftables")
    assert isinstance(instance, NftablesFirewall)
    try:
        yield instance
    finally:
        subprocess.run(["nft", "delete", "table", "ip", instance.table], capture_output=True)
        assert f"table ip {instance.table}" not in _tables()


def test_rendered_text_passes_nft_check(firewall: NftablesFirewall) -> None:
    bridges = [BridgeRules("dyia", "10.213.40.0/24", False),
               BridgeRules("dyib", "10.213.41.0/24", True),
               BridgeRules("dyic", "10.213.42.0/24", False, masquerade=False)]
    ports = [PortRule("tcp", "", 18080, "10.213.40.2", 80),
             PortRule("udp", "127.0.0.1", 15353, "10.213.40.3", 53)]
    for b, p in ((bridges, ports), (bridges[:1], []), ([], [])):
        run_nft(firewall.render(b, p), check_only=True)
    run_nft(firewall.render_teardown(), check_only=True)
    assert f"table ip {firewall.table}" not in _tables()     # -c commits nothing


def test_apply_is_idempotent_and_teardown_removes_the_table(
        firewall: NftablesFirewall) -> None:
    bridges = [BridgeRules("dyia", "10.213.40.0/24", False),
               BridgeRules("dyib", "10.213.41.0/24", True)]
    port = PortRule("tcp", "", 18080, "10.213.40.2", 80)
    firewall.apply(bridges, [port], check_jumps=True)
    assert f"table ip {firewall.table}" in _tables()
    chains = _chains(firewall.table)
    hooks = {name: (c.get("type"), c.get("hook"), c.get("prio"), c.get("policy"))
             for name, c in chains.items()}
    assert hooks == {"forward": ("filter", "forward", 0, "accept"),
                     "prerouting": ("nat", "prerouting", -100, "accept"),
                     "output": ("nat", "output", -100, "accept"),
                     "published": (None, None, None, None),
                     "postrouting": ("nat", "postrouting", 100, "accept"),
                     "hairpin": (None, None, None, None)}
    first = _listing(firewall.table)
    assert "tcp dport 18080 dnat to 10.213.40.2:80" in first
    assert 'ip saddr 10.213.40.0/24 oifname != "dyia" masquerade' in first
    firewall.apply(bridges, [port])
    assert _listing(firewall.table) == first
    # A port change (the engine's ports_only) rebuilds it from the state given.
    firewall.apply(bridges, [], ports_only=True)
    assert "18080" not in _listing(firewall.table)
    # A table someone emptied or deleted comes back whole at the next apply.
    subprocess.run(["nft", "delete", "table", "ip", firewall.table], check=True)
    firewall.apply(bridges, [port], ports_only=True)
    assert _listing(firewall.table) == first
    firewall.teardown()
    assert f"table ip {firewall.table}" not in _tables()
    firewall.teardown()                                    # already gone: no error


def test_a_failed_transaction_changes_nothing_and_says_why(firewall: NftablesFirewall) -> None:
    firewall.apply([BridgeRules("dyia", "10.213.40.0/24", False)], [])
    before = _listing(firewall.table)
    broken = firewall.render([BridgeRules("dyia", "10.213.40.0/24", False)], []).replace(
        "jump hairpin", "jump hairpin\n\t\tno such statement")
    with pytest.raises(FirewallError, match="nft: .*syntax error"):
        run_nft(broken)
    assert _listing(firewall.table) == before
