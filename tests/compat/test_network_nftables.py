"""A dockyardd started with `--firewall-backend nftables`, driven by the real docker CLI, on
the real kernel: a published TCP port answers from 127.0.0.1 and the bridge address, two user
networks are isolated, an --internal network reaches nothing outside its bridge, the
outbound masquerade rule is there, the rules come back after a `kill -9` of the daemon, and
after the daemon stops no table of ours (nor any iptables chain) remains.

Only our own bridges and 127.0.0.1 are ever addressed: no packet leaves the machine."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.conftest import FIXTURES, Daemon, networking_leftovers
from tests.compat.network_helpers import (
    IMAGE,
    http_get,
    inspect_one,
    start_httpd,
    unique_name,
)
from tests.conftest import require_root


def _table(d: Daemon) -> str:
    return d.firewall_prefix.lower()


def _tables() -> list[str]:
    return subprocess.run(["nft", "list", "tables"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


def _ruleset(d: Daemon) -> str:
    result = subprocess.run(["nft", "list", "table", "ip", _table(d)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def nftd() -> Iterator[Daemon]:
    require_root()
    assert shutil.which("nft"), "nft (the nftables package) is needed for these tests"
    root = Path(tempfile.mkdtemp(prefix="dynft"))
    instance = Daemon(root)
    instance.extra_args = ["--firewall-backend", "nftables"]
    try:
        instance.start()
        instance.docker("load", "-i", str(FIXTURES / "fixture-docker20-save.tar"), check=True)
        yield instance
    finally:
        if instance.process is not None:
            custom = instance.docker("network", "ls", "-q", "--filter", "type=custom").stdout
            for name in custom.split():
                instance.docker("network", "rm", name)
        instance.cleanup()
        # The safety net for a daemon that died: conftest's cleanup knows iptables only.
        subprocess.run(["nft", "delete", "table", "ip", _table(instance)],
                       capture_output=True)
    leftovers = networking_leftovers(instance.data_root, instance.bridge,
                                     instance.firewall_prefix)
    assert not leftovers, leftovers
    assert f"table ip {_table(instance)}" not in _tables()
    if str(root) not in Path("/proc/self/mountinfo").read_text():
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    """A port nothing listens on and no DNAT rule on the host (another test daemon's, in
    iptables or nftables) already takes: a published port has no listening socket."""
    for _ in range(20):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True,
                                 text=True).stdout
        if f"dport {port} " not in ruleset:
            return port
    raise AssertionError("no free port found")


def _bridge(d: Daemon, network: str = "bridge") -> dict:
    record = json.loads(d.docker("network", "inspect", network, check=True).stdout)[0]
    return {"subnet": record["IPAM"]["Config"][0]["Subnet"],
            "gateway": record["IPAM"]["Config"][0]["Gateway"],
            "device": record["Options"].get("com.docker.network.bridge.name") or
            f"br-{record['Id'][:12]}"}


def test_info_reports_the_nftables_backend(nftd: Daemon) -> None:
    seen = nftd.docker("info", "--format", "{{json .FirewallBackend}}", check=True).stdout
    assert json.loads(seen)["Driver"] == "nftables"
    # (docker 28.2's `info` text does not print it; its --format reads the field.)


def test_published_port_answers_from_loopback_and_the_bridge(nftd: Daemon) -> None:
    port = _free_port()
    web = start_httpd(nftd, "-p", f"{port}:80")
    try:
        address = inspect_one(nftd, web)["NetworkSettings"]["IPAddress"]
        rules = _ruleset(nftd)
        assert f"tcp dport {port} dnat to {address}:80" in rules
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello {web}\n"
        assert http_get(f"http://{_bridge(nftd)['gateway']}:{port}/") == f"hello {web}\n"
        # Our rules are in our table only: no iptables chain of this daemon.
        saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert nftd.firewall_prefix not in saved
    finally:
        nftd.docker("rm", "-f", web, check=True)
    assert f"dport {port} " not in _ruleset(nftd)


def test_a_port_bound_to_127_0_0_1_answers_only_there(nftd: Daemon) -> None:
    port = _free_port()
    web = start_httpd(nftd, "-p", f"127.0.0.1:{port}:80")
    try:
        assert f"ip daddr 127.0.0.1 tcp dport {port} dnat to" in _ruleset(nftd)
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello {web}\n"
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex((_bridge(nftd)["gateway"], port)) != 0
    finally:
        nftd.docker("rm", "-f", web, check=True)


def test_a_container_reaches_its_own_published_port_through_the_host(nftd: Daemon) -> None:
    port = _free_port()
    web = start_httpd(nftd, "-p", f"{port}:80")
    try:
        http_get(f"http://127.0.0.1:{port}/")
        address = inspect_one(nftd, web)["NetworkSettings"]["IPAddress"]
        assert f"ip saddr {address} ip daddr {address} tcp dport 80 masquerade" in \
            _ruleset(nftd)
        seen = nftd.docker("exec", web, "wget", "-q", "-O-",
                           f"http://{_bridge(nftd)['gateway']}:{port}/")
        assert seen.stdout == f"hello {web}\n", seen.stderr
    finally:
        nftd.docker("rm", "-f", web, check=True)


def test_outbound_masquerade_rule_for_the_default_bridge(nftd: Daemon) -> None:
    # Starting a container brings the default bridge up (and its rules with it).
    nftd.docker("run", "--rm", IMAGE, "true", check=True)
    bridge = _bridge(nftd)
    rules = _ruleset(nftd)
    assert f'ip saddr {bridge["subnet"]} oifname != "{nftd.bridge}" masquerade' in rules
    assert f'oifname "{nftd.bridge}" fib saddr type local masquerade' in rules
    assert f'iifname "{nftd.bridge}" oifname != "{nftd.bridge}" accept' in rules


def test_user_networks_are_isolated(nftd: Daemon) -> None:
    net1, net2 = unique_name("nfa"), unique_name("nfb")
    nftd.docker("network", "create", "--subnet", "10.213.50.0/24", net1, check=True)
    nftd.docker("network", "create", "--subnet", "10.213.51.0/24", net2, check=True)
    web = start_httpd(nftd, "--network", net1)
    try:
        address = inspect_one(nftd, web)["NetworkSettings"]["Networks"][net1]["IPAddress"]
        same = nftd.docker("run", "--rm", "--network", net1, IMAGE, "wget", "-q", "-O-",
                           f"http://{address}/")
        assert same.stdout == f"hello {web}\n", same.stderr
        # net2's container has a route to net1's subnet (via its gateway, forwarded by the
        # host): our forward chain drops it.
        # (ping: busybox wget has no connect timeout of its own; -T crashes it.)
        reach = nftd.docker("run", "--rm", "--network", net1, IMAGE, "ping", "-c", "1", "-W",
                            "2", address)
        assert reach.returncode == 0, reach.stdout + reach.stderr
        other = nftd.docker("run", "--rm", "--network", net2, IMAGE, "ping", "-c", "1", "-W",
                            "2", address)
        assert other.returncode == 1 and "0 packets received" in other.stdout, other
        devices = (_bridge(nftd, net1)["device"], _bridge(nftd, net2)["device"])
        rules = _ruleset(nftd)
        assert f'iifname "{devices[1]}" oifname' in rules
        isolation = [line.strip() for line in rules.splitlines()
                     if line.strip().startswith(f'iifname "{devices[1]}" oifname ')
                     and line.strip().endswith(" drop") and "!=" not in line]
        assert isolation and f'"{devices[0]}"' in isolation[0]
    finally:
        nftd.docker("rm", "-f", web)
        nftd.docker("network", "rm", net1, net2, check=True)
    rules = _ruleset(nftd)
    assert "10.213.50.0" not in rules and "10.213.51.0" not in rules


def test_internal_network_has_no_route_out(nftd: Daemon) -> None:
    internal, outside = unique_name("nfint"), unique_name("nfout")
    nftd.docker("network", "create", "--internal", "--subnet", "10.213.52.0/24", internal,
                check=True)
    nftd.docker("network", "create", "--subnet", "10.213.53.0/24", outside, check=True)
    web = start_httpd(nftd, "--network", outside)
    try:
        routes = nftd.docker("run", "--rm", "--network", internal, IMAGE, "ip", "route",
                             check=True).stdout
        assert "default" not in routes
        device = _bridge(nftd, internal)["device"]
        rules = _ruleset(nftd)
        assert f'iifname "{device}" oifname != "{device}" drop' in rules
        assert f'oifname "{device}" iifname != "{device}" drop' in rules
        assert "10.213.52.0/24" not in rules        # no masquerade out of it
        # Even with a route added by hand, another of our bridges' subnets stays out of
        # reach: the forward chain drops what leaves an internal bridge.
        address = inspect_one(nftd, web)["NetworkSettings"]["Networks"][outside]["IPAddress"]
        gateway = _bridge(nftd, internal)["gateway"]
        reach = nftd.docker("run", "--rm", "--cap-add", "NET_ADMIN", "--network", internal,
                            IMAGE, "sh", "-c",
                            f"ip route add 10.213.53.0/24 via {gateway} && "
                            f"ping -c 1 -W 2 {address}")
        assert reach.returncode == 1 and "0 packets received" in reach.stdout, reach
    finally:
        nftd.docker("rm", "-f", web)
        nftd.docker("network", "rm", internal, outside, check=True)


def test_rules_come_back_after_a_kill_9_of_the_daemon(nftd: Daemon) -> None:
    port = _free_port()
    web = start_httpd(nftd, "-p", f"{port}:80")
    try:
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello {web}\n"
        nftd.stop(kill=True)
        # Someone deletes our table while the daemon is away: its start rebuilds it.
        subprocess.run(["nft", "delete", "table", "ip", _table(nftd)], check=True)
        nftd.start()
        assert f"tcp dport {port} dnat to" in _ruleset(nftd)
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello {web}\n"
    finally:
        nftd.docker("rm", "-f", web, check=True)


def test_a_clean_stop_removes_our_table(nftd: Daemon) -> None:
    """Last in the module: the daemon stops with nothing running, its table goes."""
    nftd.docker("run", "--rm", "-p", f"{_free_port()}:80", IMAGE, "true", check=True)
    assert f"table ip {_table(nftd)}" in _tables()
    nftd.stop()
    assert f"table ip {_table(nftd)}" not in _tables()
    assert not networking_leftovers(nftd.data_root, nftd.bridge, nftd.firewall_prefix)
    nftd.start()
    assert f"table ip {_table(nftd)}" not in _tables()     # made again on demand only
