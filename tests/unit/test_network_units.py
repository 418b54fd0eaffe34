"""The network package's pure parts: IPAM, port bindings, firewall rules, netlink encoding."""

from __future__ import annotations

import ipaddress
import struct

import pytest

from dockyard.network import BridgeRules, Firewall, PortRule, ipam, ports
from dockyard.network._netlink import _attr, mac_bytes


def net(text: str) -> ipam.AnyNetwork:
    return ipaddress.ip_network(text)


def test_pick_subnet_skips_what_is_taken() -> None:
    assert str(ipam.pick_subnet([])) == "172.17.0.0/16"
    taken = [net("172.17.0.0/16"), net("172.18.5.0/24"), net("10.0.0.0/8")]
    assert str(ipam.pick_subnet(taken)) == "172.19.0.0/16"
    every = [net("172.16.0.0/12"), net("192.168.0.0/16")]
    with pytest.raises(ipam.IpamError):
        ipam.pick_subnet(every)


def test_allocate_in_order_without_duplicates() -> None:
    subnet = net("10.1.0.0/29")
    taken = {"10.1.0.1"}
    got = []
    for _ in range(5):
        address = ipam.allocate(subnet, taken)
        taken.add(address)
        got.append(address)
    assert got == ["10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
    with pytest.raises(ipam.IpamError, match="no available"):
        ipam.allocate(subnet, taken)
    taken.discard("10.1.0.4")   # released: allocated again
    assert ipam.allocate(subnet, taken) == "10.1.0.4"


def test_allocate_requested_and_ranges() -> None:
    subnet = net("10.2.0.0/24")
    assert ipam.allocate(subnet, {"10.2.0.1"}, requested="10.2.0.77") == "10.2.0.77"
    with pytest.raises(ipam.IpamError, match="already in use"):
        ipam.allocate(subnet, {"10.2.0.77"}, requested="10.2.0.77")
    with pytest.raises(ipam.IpamError, match="does not belong"):
        ipam.allocate(subnet, set(), requested="10.3.0.5")
    with pytest.raises(ipam.IpamError, match="already in use"):
        ipam.allocate(subnet, set(), requested="10.2.0.255")   # broadcast
    assert ipam.allocate(subnet, set(), ip_range=net("10.2.0.128/25")) == "10.2.0.129"


def test_gateway_and_mac() -> None:
    assert ipam.default_gateway(net("172.18.0.0/16")) == "172.18.0.1"
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    assert mac_bytes("02:42:ac:11:00:02") == b"\x02\x42\xac\x11\x00\x02"


def test_wanted_bindings_and_choice() -> None:
    wanted = ports.wanted_bindings(
        {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": [{"HostPort": ""}]},
        {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}}, publish_all=True)
    assert (80, "tcp", "0.0.0.0", 8080) in wanted
    assert (53, "udp", "0.0.0.0", 0) in wanted
    assert (9000, "tcp", "0.0.0.0", 0) in wanted
    taken: set[tuple[str, int]] = set()
    chosen = ports.choose(wanted, taken)
    assert chosen[0].host_port == 8080
    assert all(b.host_port > 0 for b in chosen)
    assert len({(b.proto, b.host_port) for b in chosen}) == 3
    with pytest.raises(ports.PortError, match="already allocated"):
        ports.choose([(81, "tcp", "0.0.0.0", 8080)], taken)
    view = ports.ports_view({"80/tcp": {}, "7/tcp": {}}, chosen[:1])
    assert view == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "7/tcp": None}


def test_host_port_range_takes_the_first_free() -> None:
    wanted = ports.wanted_bindings({"80/tcp": [{"HostPort": "40100-40110"}]}, None, False)
    chosen = ports.choose(wanted, {("tcp", 40100)})
    assert 40101 <= chosen[0].host_port <= 40110


def test_bad_port_keys() -> None:
    with pytest.raises(ports.PortError):
        ports.parse_port_key("80/icmp")
    with pytest.raises(ports.PortError):
        ports.parse_port_key("70000/tcp")


def test_firewall_render_isolation_nat_and_ports() -> None:
    firewall = Firewall("DYX")
    text = firewall.render([BridgeRules("br-a", "10.5.0.0/16", False),
                            BridgeRules("br-i", "10.6.0.0/16", True)],
                           [PortRule("tcp", "0.0.0.0", 8080, "10.5.0.2", 80),
                            PortRule("udp", "127.0.0.1", 5353, "10.5.0.2", 53)])
    lines = text.splitlines()
    assert lines[0] == "*filter" and ":DYX-FORWARD - [0:0]" in lines
    assert "-A DYX-ISOLATION-1 -i br-a ! -o br-a -j DYX-ISOLATION-2" in lines
    assert "-A DYX-ISOLATION-2 -o br-i -j DROP" in lines
    assert "-A DYX-FORWARD -i br-i ! -o br-i -j DROP" in lines
    assert "-A DYX-FORWARD -i br-a ! -o br-a -j ACCEPT" in lines
    assert not any("-s 10.6.0.0/16" in line for line in lines)   # --internal: no NAT
    assert "-A DYX-POSTROUTING -s 10.5.0.0/16 ! -o br-a -j MASQUERADE" in lines
    assert ("-A DYX-DNAT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.5.0.2:80"
            in lines)
    assert ("-A DYX-DNAT -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j DNAT "
            "--to-destination 10.5.0.2:53" in lines)
    assert text.count("COMMIT") == 2
    assert not any(line.startswith("-A FORWARD") or line.startswith("-I FORWARD")
                   for line in lines)


def test_firewall_jumps_added_only_when_missing() -> None:
    firewall = Firewall("DYX")
    saved = "-A FORWARD -j DYX-FORWARD\n-A POSTROUTING -j DYX-POSTROUTING\n"
    lines = firewall.render([], [], saved).splitlines()
    assert "-I FORWARD 1 -j DYX-FORWARD" not in lines
    assert "-A PREROUTING -m addrtype --dst-type LOCAL -j DYX-DNAT" in lines
    assert "-A OUTPUT -m addrtype --dst-type LOCAL -j DYX-DNAT" in lines
    assert "-A POSTROUTING -j DYX-POSTROUTING" not in lines
    fresh = firewall.render([], [], "").splitlines()
    assert "-I FORWARD 1 -j DYX-FORWARD" in fresh


def test_firewall_teardown_removes_jumps_then_chains() -> None:
    firewall = Firewall("DYX")
    saved = (":DYX-FORWARD - [0:0]\n:DYX-ISOLATION-1 - [0:0]\n:DYX-ISOLATION-2 - [0:0]\n"
             "-A FORWARD -j DYX-FORWARD\n:DYX-DNAT - [0:0]\n:DYX-POSTROUTING - [0:0]\n"
             "-A OUTPUT -m addrtype --dst-type LOCAL -j DYX-DNAT\n")
    lines = firewall.render_teardown(saved).splitlines()
    assert lines.index("-D FORWARD -j DYX-FORWARD") < lines.index("-X DYX-FORWARD")
    assert "-D OUTPUT -m addrtype --dst-type LOCAL -j DYX-DNAT" in lines
    assert "-D PREROUTING -m addrtype --dst-type LOCAL -j DYX-DNAT" not in lines
    assert "-X DYX-POSTROUTING" in lines


def test_netlink_attributes_are_padded() -> None:
    encoded = _attr(3, b"eth0\0")
    length, kind = struct.unpack_from("=HH", encoded)
    assert (length, kind) == (9, 3)
    assert len(encoded) == 12


def test_firewall_render_one_table() -> None:
    text = Firewall("DYX").render([BridgeRules("br-a", "10.5.0.0/16", False)], [],
                                  tables=("nat",))
    assert text.startswith("*nat\n") and "*filter" not in text
