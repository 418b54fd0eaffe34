"""The bridge driver's kernel side: bridge devices, a container's network namespace (a
sandbox), and veth endpoints from a bridge into a sandbox. All netlink, in-process."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

from . import _netns
from ._netlink import Netlink, NetlinkError


class BridgeError(RuntimeError):
    pass


def _sysctl(path: str, value: str) -> None:
    try:
        with open(f"/proc/sys/{path}", "w") as f:
            f.write(value)
    except OSError:
        pass  # not fatal: e.g. IPv6 disabled on the host


def enable_ip_forward() -> None:
    _sysctl("net/ipv4/ip_forward", "1")


def ensure_bridge(name: str, addresses: list[str], mtu: int = 0) -> bool:
    """The bridge `name`, up, with these addresses ("172.18.0.1/16"); True if made now
    (an existing device, e.g. one the daemon made before a restart, is kept)."""
    with Netlink() as nl:
        index = nl.link_index(name)
        created = index is None
        if index is None:
            try:
                index = nl.add_bridge(name, mtu)
            except NetlinkError as e:
                raise BridgeError(f"creating bridge {name}: {e.strerror}") from None
            for address in addresses:
                if ipaddress.ip_interface(address).version == 6:
                    _sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "0")
                nl.add_address(index, address)
            nl.set_up(name)
        # Published ports answer on 127.0.0.1: DNATed loopback packets may leave by it.
        _sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
        return created


def delete_link(name: str) -> bool:
    with Netlink() as nl:
        return nl.delete_link(name)


def ipv4_interface(name: str) -> str | None:
    """A device's IPv4 address and prefix ("10.1.0.1/24"), None without one (or device)."""
    import fcntl
    import socket
    import struct

    request = struct.pack("16sH14s", name.encode()[:15], socket.AF_INET, b"")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            address = fcntl.ioctl(probe.fileno(), 0x8915, request)     # SIOCGIFADDR
            netmask = fcntl.ioctl(probe.fileno(), 0x891B, request)     # SIOCGIFNETMASK
        except OSError:
            return None
    ip = socket.inet_ntoa(address[20:24])
    prefix = ipaddress.ip_network(f"0.0.0.0/{socket.inet_ntoa(netmask[20:24])}").prefixlen
    return f"{ip}/{prefix}"


def link_exists(name: str) -> bool:
    with Netlink() as nl:
        return nl.link_index(name) is not None


class Endpoint:
    """One interface of a container on a bridge."""

    def __init__(self, bridge: str, interface: str, addresses: list[str],
                 gateways: list[str], mac: str, mtu: int = 0, veth: str = "") -> None:
        self.bridge = bridge
        self.interface = interface        # eth0, eth1... inside the sandbox
        self.addresses = addresses        # "172.18.0.2/16", "fd00::2/64"
        self.gateways = gateways          # default routes ("" for none: --internal)
        self.mac = mac
        self.mtu = mtu
        self.veth = veth or "veth" + secrets.token_hex(4)[:7]


def create_sandbox(path: Path, endpoints: list[Endpoint]) -> None:
    """A new network namespace at `path` with loopback up and these endpoints plugged in."""

    def setup() -> None:
        with Netlink() as inside:
            inside.set_up("lo")
            _plug(host, inside, endpoints)

    try:
        with Netlink() as host:
            _netns.create(path, setup)
    except (OSError, NetlinkError, BridgeError) as e:
        for endpoint in endpoints:
            delete_link(endpoint.veth)
        raise BridgeError(f"setting up the container's network: {e}") from None


def plug(path: Path | str, endpoints: list[Endpoint]) -> None:
    """More endpoints into an existing sandbox (network connect)."""

    def work() -> None:
        with Netlink() as inside:
            _plug(host, inside, endpoints)

    try:
        with Netlink() as host:
            _netns.enter(path, work)
    except (OSError, NetlinkError, BridgeError) as e:
        for endpoint in endpoints:
            delete_link(endpoint.veth)
        raise BridgeError(f"connecting the container to the network: {e}") from None


def _plug(host: Netlink, inside: Netlink, endpoints: list[Endpoint]) -> None:
    """Runs in a thread inside the sandbox: the veth's peer is created in this namespace
    (by our own namespace's fd) from `host`, a socket opened in the host's namespace."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for endpoint in endpoints:
            master = host.link_index(endpoint.bridge)
            if master is None:
                raise BridgeError(f"bridge {endpoint.bridge} does not exist")
            host.add_veth(endpoint.veth, endpoint.interface, own, endpoint.mac, master,
                          endpoint.mtu)
            host.set_hairpin(endpoint.veth)
    finally:
        os.close(own)
    for endpoint in endpoints:
        index = inside.link_index(endpoint.interface)
        assert index is not None
        for address in endpoint.addresses:
            if ipaddress.ip_interface(address).version == 6:
                _sysctl(f"net/ipv6/conf/{endpoint.interface}/disable_ipv6", "0")
            inside.add_address(index, address)
        inside.set_up(endpoint.interface)
        for gateway in endpoint.gateways:
            if gateway:
                try:
                    inside.add_default_route(gateway, index)
                except NetlinkError:
                    pass  # another network gave the default route first (Docker: same)


def unplug(veth: str) -> None:
    """Removes an endpoint (its veth pair) wherever the peer is."""
    try:
        delete_link(veth)
    except NetlinkError:
        pass


def remove_sandbox(path: Path) -> None:
    _netns.remove(path)


def sandbox_exists(path: Path) -> bool:
    return _netns.is_bound(path)
