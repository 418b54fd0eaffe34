"""Networks through the real docker CLI against dockyardd: the default bridge, user-defined
networks (reachability, isolation, --internal), published TCP and UDP ports, -P,
connect/disconnect, IPAM across a daemon restart, and nothing left on the host after."""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
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


@pytest.fixture(scope="module")
def netd() -> Iterator[Daemon]:
    """A daemon of this module's own, so that what it leaves can be checked at the end."""
    require_root()
    root = Path(tempfile.mkdtemp(prefix="dynet"))
    instance = Daemon(root)
    instance.start()
    instance.docker("load", "-i", str(FIXTURES / "fixture-docker20-save.tar"), check=True)
    try:
        yield instance
    finally:
        custom = instance.docker("network", "ls", "-q", "--filter", "type=custom").stdout
        for name in custom.split():
            instance.docker("network", "rm", name)
        instance.cleanup()
        leftovers = networking_leftovers(instance.data_root, instance.bridge,
                                         instance.firewall_prefix)
        shutil.rmtree(root, ignore_errors=True)
        assert not leftovers, leftovers


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bridge_gateway(d: Daemon) -> str:
    network = json.loads(d.docker("network", "inspect", "bridge", check=True).stdout)[0]
    return str(network["IPAM"]["Config"][0]["Gateway"])


def test_default_bridge_gives_an_address_and_a_route(netd: Daemon) -> None:
    result = netd.docker("run", "--rm", IMAGE, "sh", "-c", "ip -4 addr show eth0; ip route",
                         check=True)
    network = json.loads(netd.docker("network", "inspect", "bridge", check=True).stdout)[0]
    subnet = ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])
    gateway = network["IPAM"]["Config"][0]["Gateway"]
    address = result.stdout.split("inet ")[1].split("/")[0]
    assert ipaddress.ip_address(address) in subnet
    assert f"default via {gateway} dev eth0" in result.stdout
    assert network["Options"]["com.docker.network.bridge.name"] == netd.bridge


def test_inspect_network_settings_of_a_running_container(netd: Daemon) -> None:
    name = unique_name("insp")
    netd.docker("run", "-d", "--name", name, IMAGE, "sleep", "60", check=True)
    try:
        settings = inspect_one(netd, name)["NetworkSettings"]
        endpoint = settings["Networks"]["bridge"]
        assert settings["IPAddress"] == endpoint["IPAddress"] != ""
        assert settings["Gateway"] == _bridge_gateway(netd)
        assert settings["MacAddress"] == endpoint["MacAddress"] != ""
        assert settings["SandboxKey"].startswith(str(netd.exec_root))
        assert endpoint["NetworkID"] and endpoint["EndpointID"]
        network = json.loads(netd.docker("network", "inspect", "bridge").stdout)[0]
        container_id = inspect_one(netd, name)["Id"]
        assert network["Containers"][container_id]["IPv4Address"].startswith(
            endpoint["IPAddress"] + "/")
        # From the host, the container answers on its address.
        netd.docker("exec", "-d", name, "sh", "-c",
                    "mkdir -p /www && echo hi > /www/index.html && httpd -p 81 -h /www",
                    check=True)
        assert http_get(f"http://{endpoint['IPAddress']}:81/") == "hi\n"
    finally:
        netd.docker("rm", "-f", name)
    stopped = netd.docker("ps", "-aq", "--filter", f"name={name}").stdout
    assert not stopped


def test_user_network_reachability_and_isolation(netd: Daemon) -> None:
    net1, net2 = unique_name("net1"), unique_name("net2")
    netd.docker("network", "create", net1, check=True)
    netd.docker("network", "create", "--subnet", "10.213.7.0/24", "--gateway", "10.213.7.254",
                net2, check=True)
    web = start_httpd(netd, "--network", net1, "--network-alias", "www")
    try:
        address = inspect_one(netd, web)["NetworkSettings"]["Networks"][net1]["IPAddress"]
        same = netd.docker("run", "--rm", "--network", net1, IMAGE, "wget", "-q",
                           "-O-", f"http://{address}/")
        assert same.returncode == 0, same.stderr
        assert same.stdout == f"hello {web}\n"
        other = netd.docker("run", "--rm", "--network", net2, "--ip", "10.213.7.9", IMAGE,
                            "sh", "-c", f"ip -4 addr show eth0; ping -c 1 -W 2 {address}")
        assert "10.213.7.9/24" in other.stdout
        assert other.returncode != 0
        assert "1 packets received" not in other.stdout
        default = netd.docker("run", "--rm", IMAGE, "ping", "-c", "1", "-W", "2", address)
        assert default.returncode != 0
    finally:
        netd.docker("rm", "-f", web)
        netd.docker("network", "rm", net1, net2, check=True)


def test_internal_network_has_no_route_out(netd: Daemon) -> None:
    internal = unique_name("internal")
    netd.docker("network", "create", "--internal", internal, check=True)
    try:
        routes = netd.docker("run", "--rm", "--network", internal, IMAGE, "ip", "route",
                             check=True).stdout
        assert "default" not in routes
        # Not even the default bridge's gateway (a host address) is reachable.
        gateway = _bridge_gateway(netd)
        reach = netd.docker("run", "--rm", "--network", internal, IMAGE, "ping", "-c", "1",
                            "-W", "2", gateway)
        assert reach.returncode != 0
        assert "Network is unreachable" in reach.stderr
        assert json.loads(netd.docker("network", "inspect", internal).stdout)[0]["Internal"]
    finally:
        netd.docker("network", "rm", internal, check=True)


def test_published_tcp_port_answers_on_loopback_and_bridge(netd: Daemon) -> None:
    port = _free_port()
    web = start_httpd(netd, "-p", f"{port}:80")
    try:
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello {web}\n"
        assert http_get(f"http://{_bridge_gateway(netd)}:{port}/") == f"hello {web}\n"
        assert netd.docker("port", web, check=True).stdout.strip() == f"80/tcp -> 0.0.0.0:{port}"
        inspected = inspect_one(netd, web)
        assert inspected["HostConfig"]["PortBindings"] == {
            "80/tcp": [{"HostIp": "", "HostPort": str(port)}]}
        assert inspected["NetworkSettings"]["Ports"]["80/tcp"] == [
            {"HostIp": "0.0.0.0", "HostPort": str(port)}]
        listing = netd.docker("ps", "--filter", f"name={web}", "--format", "{{.Ports}}").stdout
        assert f"0.0.0.0:{port}->80/tcp" in listing
        taken = netd.docker("run", "-d", "-p", f"{port}:80", IMAGE, "sleep", "5")
        assert taken.returncode != 0
        assert "port is already allocated" in taken.stderr
        netd.docker("container", "prune", "-f")
    finally:
        netd.docker("rm", "-f", web)
    saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                                         text=True).stdout
    assert f"--dport {port} " not in saved


def test_published_udp_port(netd: Daemon) -> None:
    """busybox has no UDP server: a UDP echo runs in the container's network namespace
    (its SandboxKey), which is where the published port leads."""
    port = _free_port(socket.SOCK_DGRAM)
    name = unique_name("udp")
    netd.docker("run", "-d", "--name", name, "-p", f"{port}:9999/udp", IMAGE, "sleep", "300",
                check=True)
    echo = None
    try:
        assert netd.docker("port", name, "9999/udp").stdout.strip() == f"0.0.0.0:{port}"
        key = inspect_one(netd, name)["NetworkSettings"]["SandboxKey"]
        echo = subprocess.Popen(["nsenter", f"--net={key}", sys.executable, "-c", _UDP_ECHO],
                                stdout=subprocess.PIPE)
        assert echo.stdout is not None and echo.stdout.readline() == b"ready\n"
        for host in ("127.0.0.1", _bridge_gateway(netd)):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(5)
                client.sendto(b"ping-udp", (host, port))
                reply, _ = client.recvfrom(100)
            assert reply == b"echo ping-udp", host
    finally:
        if echo is not None:
            echo.kill()
            echo.wait()
        netd.docker("rm", "-f", name)


_UDP_ECHO = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(100)
    s.sendto(b"echo " + data, peer)
"""


def test_publish_all_picks_free_ports(netd: Daemon) -> None:
    web = start_httpd(netd, "-P", port=8080)   # the image EXPOSEs 8080
    try:
        mapping = netd.docker("port", web, "8080/tcp", check=True).stdout.split()[0]
        host_ip, _, host_port = mapping.rpartition(":")
        assert host_ip == "0.0.0.0" and int(host_port) > 1024
        assert http_get(f"http://127.0.0.1:{host_port}/") == f"hello {web}\n"
    finally:
        netd.docker("rm", "-f", web)


def test_connect_and_disconnect_a_running_container(netd: Daemon) -> None:
    net = unique_name("conn")
    netd.docker("network", "create", "--subnet", "10.213.9.0/24", net, check=True)
    name = unique_name("c")
    netd.docker("run", "-d", "--name", name, IMAGE, "sleep", "120", check=True)
    try:
        netd.docker("network", "connect", "--ip", "10.213.9.50", "--alias", "extra", net, name,
                    check=True)
        addresses = netd.docker("exec", name, "ip", "-4", "addr", check=True).stdout
        assert "10.213.9.50/24" in addresses
        endpoint = inspect_one(netd, name)["NetworkSettings"]["Networks"][net]
        assert endpoint["IPAddress"] == "10.213.9.50"
        assert "extra" in endpoint["Aliases"]
        again = netd.docker("network", "connect", net, name)
        assert again.returncode != 0 and "already exists" in again.stderr
        busy = netd.docker("network", "rm", net)
        assert busy.returncode != 0 and "has active endpoints" in busy.stderr
        netd.docker("network", "disconnect", net, name, check=True)
        addresses = netd.docker("exec", name, "ip", "-4", "addr", check=True).stdout
        assert "10.213.9.50" not in addresses
        assert net not in inspect_one(netd, name)["NetworkSettings"]["Networks"]
    finally:
        netd.docker("rm", "-f", name)
        netd.docker("network", "rm", net, check=True)


def test_container_network_mode_shares_the_namespace(netd: Daemon) -> None:
    name = unique_name("owner")
    netd.docker("run", "-d", "--name", name, IMAGE, "sleep", "60", check=True)
    try:
        address = inspect_one(netd, name)["NetworkSettings"]["IPAddress"]
        seen = netd.docker("run", "--rm", "--network", f"container:{name}", IMAGE, "ip", "-4",
                           "addr", "show", "eth0", check=True).stdout
        assert f"inet {address}/" in seen
        # As dockerd: the joining container takes the owner's hostname and /etc files.
        script = "hostname; cat /etc/hostname /etc/hosts /etc/resolv.conf"
        owner = netd.docker("exec", name, "sh", "-c", script, check=True).stdout
        joined = netd.docker("run", "--rm", "--network", f"container:{name}", IMAGE, "sh",
                             "-c", script, check=True).stdout
        assert joined == owner and address in joined
        for flags, what in ((["--hostname", "x"], "hostname and the network mode"),
                            (["--dns", "10.0.0.1"], "dns and the network mode"),
                            (["--add-host", "a:10.0.0.1"],
                             "custom host-to-IP mapping and the network mode"),
                            (["-p", "8080:80"],
                             "port publishing and the container type network mode"),
                            (["--expose", "80"],
                             "port exposing and the container type network mode")):
            refused = netd.docker("run", "--rm", "--network", f"container:{name}", *flags,
                                  IMAGE, "true")
            assert refused.returncode == 125, (flags, refused.stderr)
            assert f"conflicting options: {what}" in refused.stderr, refused.stderr
    finally:
        netd.docker("rm", "-f", name)


def test_host_and_none_modes(netd: Daemon) -> None:
    none = netd.docker("run", "--rm", "--network", "none", IMAGE, "ip", "-o", "link",
                       check=True).stdout
    assert "eth0" not in none and "lo" in none
    host = netd.docker("run", "--rm", "--network", "host", IMAGE, "ip", "-o", "link",
                       check=True).stdout
    assert netd.bridge in host


def test_network_ls_inspect_rm_prune(netd: Daemon) -> None:
    name = unique_name("lsnet")
    created = netd.docker("network", "create", "--label", "team=net", "--ip-range",
                          "10.213.11.128/25", "--subnet", "10.213.11.0/24", "-o",
                          "com.docker.network.driver.mtu=1400", name, check=True)
    network_id = created.stdout.strip()
    assert len(network_id) == 64
    listing = netd.docker("network", "ls", "--filter", "label=team=net", "--format",
                          "{{.Name}} {{.Driver}} {{.Scope}}", check=True).stdout
    assert listing.strip() == f"{name} bridge local"
    assert "bridge" in netd.docker("network", "ls", "--filter", "type=builtin").stdout
    record = json.loads(netd.docker("network", "inspect", name, check=True).stdout)[0]
    assert record["IPAM"]["Config"] == [{"Subnet": "10.213.11.0/24", "Gateway": "10.213.11.1",
                                         "IPRange": "10.213.11.128/25"}]
    assert record["Labels"] == {"team": "net"}
    ip = netd.docker("run", "--rm", "--network", name, IMAGE, "sh", "-c",
                     "ip -4 -o addr show eth0; cat /sys/class/net/eth0/mtu", check=True).stdout
    assert "10.213.11.129/24" in ip and "1400" in ip
    duplicate = netd.docker("network", "create", name)
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr
    overlap = netd.docker("network", "create", "--subnet", "10.213.11.0/25", unique_name("x"))
    assert overlap.returncode != 0 and "overlaps" in overlap.stderr
    predefined = netd.docker("network", "rm", "bridge")
    assert predefined.returncode != 0 and "pre-defined" in predefined.stderr
    missing = netd.docker("network", "inspect", "no-such-net")
    assert missing.returncode != 0 and "not found" in missing.stderr
    pruned = netd.docker("network", "prune", "-f", check=True).stdout
    assert name in pruned
    assert name not in netd.docker("network", "ls").stdout


def test_ipam_survives_a_daemon_restart(netd: Daemon) -> None:
    net = unique_name("keep")
    netd.docker("network", "create", "--subnet", "10.213.13.0/24", net, check=True)
    first = unique_name("first")
    netd.docker("run", "-d", "--name", first, "--network", net, IMAGE, "sleep", "300",
                check=True)
    try:
        address = inspect_one(netd, first)["NetworkSettings"]["Networks"][net]["IPAddress"]
        netd.stop()
        netd.start()
        record = json.loads(netd.docker("network", "inspect", net, check=True).stdout)[0]
        assert [c["IPv4Address"] for c in record["Containers"].values()] == [f"{address}/24"]
        second = netd.docker("run", "--rm", "--network", net, IMAGE, "ip", "-4", "-o", "addr",
                             "show", "eth0", check=True).stdout
        assert f"{address}/" not in second
        assert netd.docker("run", "--rm", "--network", net, IMAGE, "ping", "-c", "1", "-W",
                           "2", address).returncode == 0   # the first still answers
    finally:
        netd.docker("rm", "-f", first)
        netd.docker("network", "rm", net, check=True)
    record = json.loads(netd.docker("network", "inspect", "bridge").stdout)[0]
    assert record["Containers"] == {}


def test_add_host_gateway_and_hosts_file(netd: Daemon) -> None:
    hosts = netd.docker("run", "--rm", "--add-host", "outside:host-gateway", "--hostname",
                        "myhost", IMAGE, "cat", "/etc/hosts", check=True).stdout
    assert f"{_bridge_gateway(netd)}\toutside" in hosts
    assert "\tmyhost" in hosts.splitlines()[-1]


dns_merged = pytest.mark.skipif(
    not (Path(__file__).resolve().parents[2] / "src/dockyard/network/dns.py").exists(),
    reason="ENABLE AFTER MERGING the `dns` branch: needs src/dockyard/network/dns.py")


@dns_merged
def test_names_and_aliases_resolve_on_a_user_network(netd: Daemon) -> None:
    net = unique_name("dnsnet")
    netd.docker("network", "create", net, check=True)
    web = start_httpd(netd, "--network", net, "--network-alias", "www", "--hostname", "webhost")
    try:
        for target in (web, "www", "webhost"):
            reply = netd.docker("run", "--rm", "--network", net, IMAGE, "wget", "-q",
                                "-O-", f"http://{target}/")
            assert reply.stdout == f"hello {web}\n", (target, reply.stderr)
        resolv = netd.docker("run", "--rm", "--network", net, IMAGE, "cat",
                             "/etc/resolv.conf", check=True).stdout
        assert "nameserver 127.0.0.11" in resolv and "ndots:0" in resolv
    finally:
        netd.docker("rm", "-f", web)
        netd.docker("network", "rm", net, check=True)


def test_dockyard_network_commands_match_docker(netd: Daemon) -> None:
    name = unique_name("dynet")
    created = netd.dockyard("network", "create", "--subnet", "10.213.15.0/24", "--label",
                            "k=v", "--aux-address", "gw2=10.213.15.250", name,
                            check=True).stdout.strip()
    assert len(created) == 64
    for tool in (netd.docker, netd.dockyard):
        listing = tool("network", "ls", "--filter", f"name={name}", check=True).stdout
        assert listing.splitlines()[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        assert listing.splitlines()[1].split() == [created[:12], name, "bridge", "local"]
    ours = netd.dockyard("network", "ls", "--format", "{{.Name}} {{.IPv6}} {{.Internal}}",
                         "--filter", "label=k=v", check=True).stdout
    theirs = netd.docker("network", "ls", "--format", "{{.Name}} {{.IPv6}} {{.Internal}}",
                         "--filter", "label=k=v", check=True).stdout
    assert ours == theirs == f"{name} false false\n"
    inspected = json.loads(netd.dockyard("network", "inspect", name, check=True).stdout)
    assert inspected == json.loads(netd.docker("network", "inspect", name, check=True).stdout)
    assert inspected[0]["IPAM"]["Config"][0]["AuxiliaryAddresses"] == {"gw2": "10.213.15.250"}
    container = unique_name("dyc")
    netd.docker("run", "-d", "--name", container, IMAGE, "sleep", "60", check=True)
    try:
        netd.dockyard("network", "connect", "--ip", "10.213.15.9", name, container, check=True)
        assert inspect_one(netd, container)["NetworkSettings"]["Networks"][name]["IPAddress"] == \
            "10.213.15.9"
        netd.dockyard("network", "disconnect", name, container, check=True)
        assert name not in inspect_one(netd, container)["NetworkSettings"]["Networks"]
    finally:
        netd.docker("rm", "-f", container)
    assert netd.dockyard("network", "rm", name, check=True).stdout == f"{name}\n"
    missing = netd.dockyard("network", "rm", name)
    assert missing.returncode == 1
    assert missing.stderr == f"Error response from daemon: network {name} not found\n"


def test_docker_py_networks(netd: Daemon) -> None:
    import docker

    client = docker.DockerClient(base_url=netd.host)
    name = unique_name("py")
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.213.17.0/24")])
    network = client.networks.create(name, driver="bridge", ipam=ipam, labels={"x": "y"})
    container = client.containers.run(IMAGE, ["sleep", "60"], detach=True)
    try:
        assert network.attrs["IPAM"]["Config"][0]["Subnet"] == "10.213.17.0/24"
        assert [n.name for n in client.networks.list(names=[name])] == [name]
        network.connect(container, ipv4_address="10.213.17.20", aliases=["py-alias"])
        network.reload()
        assert [c.id for c in network.containers] == [container.id]
        container.reload()
        assert container.attrs["NetworkSettings"]["Networks"][name]["IPAddress"] == \
            "10.213.17.20"
        network.disconnect(container)
        network.reload()
        assert network.containers == []
        with pytest.raises(docker.errors.NotFound):
            client.networks.get("no-such-network")
        with pytest.raises(docker.errors.APIError) as raised:
            client.networks.get("bridge").remove()
        assert raised.value.status_code == 403
    finally:
        container.remove(force=True)
        network.remove()
        client.close()


def test_restart_recreates_the_sandbox(netd: Daemon) -> None:
    name = unique_name("restart")
    netd.docker("run", "-d", "--name", name, IMAGE, "sleep", "300", check=True)
    try:
        first = inspect_one(netd, name)["NetworkSettings"]["SandboxKey"]
        netd.docker("restart", "-t", "0", name, check=True)
        settings = inspect_one(netd, name)["NetworkSettings"]
        assert settings["SandboxKey"] == first and settings["IPAddress"]
        route = netd.docker("exec", name, "ip", "route", check=True).stdout
        assert f"default via {_bridge_gateway(netd)}" in route
        netd.docker("stop", "-t", "0", name, check=True)
        stopped = inspect_one(netd, name)["NetworkSettings"]
        assert stopped["IPAddress"] == "" and stopped["SandboxKey"] == ""
        assert stopped["Networks"]["bridge"]["IPAddress"] == ""
        assert not Path(first).exists()
    finally:
        netd.docker("rm", "-f", name)


def test_kill_9_of_the_daemon_then_rules_and_addresses_come_back(netd: Daemon) -> None:
    port = _free_port()
    web = start_httpd(netd, "-p", f"{port}:80")
    try:
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello {web}\n"
        netd.stop(kill=True)
        # Someone flushes our chains while the daemon is away: its start rebuilds them.
        subprocess.run(["iptables", "-w", "-t", "nat", "-F", f"{netd.firewall_prefix}-DNAT"],
                       check=True)
        netd.start()
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello {web}\n"
        address = inspect_one(netd, web)["NetworkSettings"]["IPAddress"]
        other = netd.docker("run", "--rm", IMAGE, "ip", "-4", "-o", "addr", "show", "eth0",
                            check=True).stdout
        assert f" {address}/" not in other
    finally:
        netd.docker("rm", "-f", web)


def test_ipv6_network_gives_addresses_and_a_route(netd: Daemon) -> None:
    name = unique_name("v6")
    netd.docker("network", "create", "--ipv6", "--subnet", "fd00:213:19::/64", name,
                check=True)
    try:
        seen = netd.docker("run", "--rm", "--network", name, IMAGE, "sh", "-c",
                           "ip -6 addr show eth0; ip -6 route; ping6 -c 1 -W 2 fd00:213:19::1",
                           check=True).stdout
        assert "inet6 fd00:213:19::2/64" in seen
        assert "default via fd00:213:19::1 dev eth0" in seen
        assert "1 packets received" in seen
        config = json.loads(netd.docker("network", "inspect", name).stdout)[0]["IPAM"]
        assert config["Config"][1] == {"Subnet": "fd00:213:19::/64",
                                       "Gateway": "fd00:213:19::1"}
    finally:
        netd.docker("network", "rm", name, check=True)


def test_an_existing_bridge_given_with_b_is_used_and_kept() -> None:
    """dockerd's -b: the host's bridge and its address are used; the daemon does not
    remove a device it did not make."""
    from dockyard.network import bridge

    require_root()
    root = Path(tempfile.mkdtemp(prefix="dynetb"))
    instance = Daemon(root)
    instance.bridge = f"dyp{uuid.uuid4().hex[:6]}"
    bridge.ensure_bridge(instance.bridge, ["10.213.23.1/24"])
    try:
        instance.start()
        instance.docker("load", "-i", str(FIXTURES / "fixture-docker20-save.tar"), check=True)
        seen = instance.docker("run", "--rm", IMAGE, "ip", "route", check=True).stdout
        assert "default via 10.213.23.1 dev eth0" in seen
        instance.stop()
        assert bridge.link_exists(instance.bridge)
    finally:
        instance.cleanup()
        leftovers = networking_leftovers(instance.data_root, instance.bridge,
                                         instance.firewall_prefix)
        shutil.rmtree(root, ignore_errors=True)
        assert not leftovers, leftovers


def test_a_container_that_exits_while_the_daemon_is_down_is_detached(netd: Daemon) -> None:
    import os
    import signal

    port = _free_port()
    name = unique_name("gone")
    netd.docker("run", "-d", "--name", name, "-p", f"{port}:80", IMAGE, "sleep", "300",
                check=True)
    try:
        inspected = inspect_one(netd, name)
        key, pid = inspected["NetworkSettings"]["SandboxKey"], inspected["State"]["Pid"]
        netd.stop(kill=True)
        os.kill(pid, signal.SIGKILL)
        netd.start()
        assert inspect_one(netd, name)["State"]["Running"] is False
        network = json.loads(netd.docker("network", "inspect", "bridge").stdout)[0]
        assert inspected["Id"] not in network["Containers"]
        assert not Path(key).exists()
        saved = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                               text=True).stdout
        assert f"--dport {port} " not in saved
        assert f"-j {netd.firewall_prefix}-POSTROUTING" in saved
    finally:
        netd.docker("rm", "-f", name)


def test_a_port_published_on_127_0_0_1_only_answers_there(netd: Daemon) -> None:
    port = _free_port()
    web = start_httpd(netd, "-p", f"127.0.0.1:{port}:80")
    try:
        assert http_get(f"http://127.0.0.1:{port}/") == f"hello {web}\n"
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex((_bridge_gateway(netd), port)) != 0
        assert netd.docker("port", web).stdout.strip() == f"80/tcp -> 127.0.0.1:{port}"
    finally:
        netd.docker("rm", "-f", web)


def test_a_container_reaches_its_own_published_port_through_the_host(netd: Daemon) -> None:
    port = _free_port()
    web = start_httpd(netd, "-p", f"{port}:80")
    try:
        http_get(f"http://127.0.0.1:{port}/")
        seen = netd.docker("exec", web, "wget", "-q", "-O-",
                           f"http://{_bridge_gateway(netd)}:{port}/")
        assert seen.stdout == f"hello {web}\n", seen.stderr
    finally:
        netd.docker("rm", "-f", web)


def test_ps_filters_by_network(netd: Daemon) -> None:
    net = unique_name("psnet")
    netd.docker("network", "create", net, check=True)
    name = unique_name("psc")
    netd.docker("create", "--name", name, "--network", net, IMAGE, "true", check=True)
    try:
        listed = netd.docker("ps", "-a", "--filter", f"network={net}", "--format",
                             "{{.Names}}", check=True).stdout.split()
        assert listed == [name]
        network_id = json.loads(netd.docker("network", "inspect", net).stdout)[0]["Id"]
        listed = netd.docker("ps", "-a", "--filter", f"network={network_id}", "--format",
                             "{{.Names}}", check=True).stdout.split()
        assert listed == [name]
        assert netd.docker("ps", "-a", "--filter", "network=host", "-q").stdout == ""
    finally:
        netd.docker("rm", "-f", name)
        netd.docker("network", "rm", net, check=True)


def test_daemon_without_iptables_or_default_bridge() -> None:
    """--iptables=false: no chain is made (bridges still work); -b none: no default bridge,
    containers get a loopback-only namespace and user networks still work."""
    require_root()
    root = Path(tempfile.mkdtemp(prefix="dynetopt"))
    instance = Daemon(root)
    instance.extra_args = ["--iptables=false"]
    try:
        instance.start()
        instance.docker("load", "-i", str(FIXTURES / "fixture-docker20-save.tar"), check=True)
        seen = instance.docker("run", "--rm", IMAGE, "ip", "-4", "-o", "addr", check=True)
        assert " eth0 " in seen.stdout
        saved = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert instance.firewall_prefix not in saved
        instance.stop()
        instance.bridge = "none"
        instance.start()
        names = instance.docker("network", "ls", "--format", "{{.Name}}", check=True).stdout
        assert names.split() == ["host", "none"]
        links = instance.docker("run", "--rm", IMAGE, "ip", "-o", "link", check=True).stdout
        assert "eth0" not in links and "lo:" in links
        assert inspect_one(instance, "--type", "image", IMAGE)   # the daemon still serves
        instance.docker("network", "create", "--subnet", "10.213.25.0/24", "solo", check=True)
        seen = instance.docker("run", "--rm", "--network", "solo", IMAGE, "ip", "-4", "-o",
                               "addr", check=True)
        assert "10.213.25.2/24" in seen.stdout
        instance.docker("network", "rm", "solo", check=True)
    finally:
        instance.cleanup()
        leftovers = networking_leftovers(instance.data_root, instance.bridge,
                                         instance.firewall_prefix)
        shutil.rmtree(root, ignore_errors=True)
        assert not leftovers, leftovers


def test_two_networks_at_run_and_auxiliary_addresses(netd: Daemon) -> None:
    first, second = unique_name("multi1"), unique_name("multi2")
    netd.docker("network", "create", "--subnet", "10.213.27.0/24", "--aux-address",
                "router=10.213.27.2", first, check=True)
    netd.docker("network", "create", "--subnet", "10.213.28.0/24", second, check=True)
    try:
        seen = netd.docker("run", "--rm", "--network", first, "--network", second, IMAGE,
                           "ip", "-4", "-o", "addr", check=True).stdout
        assert "eth0" in seen and "10.213.27.3/24" in seen    # .2 is reserved
        assert "eth1" in seen and "10.213.28.2/24" in seen
        record = json.loads(netd.docker("network", "inspect", first).stdout)[0]
        assert record["IPAM"]["Config"][0]["AuxiliaryAddresses"] == {"router": "10.213.27.2"}
    finally:
        netd.docker("network", "rm", first, second, check=True)
