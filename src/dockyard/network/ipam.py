"""Address management for bridge networks: choosing a free subnet, the gateway, and
addresses within a pool. Pure functions over what is taken; the engine persists it."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPv4Network = ipaddress.IPv4Network
AnyNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Docker's default local address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.
DEFAULT_POOLS: list[AnyNetwork] = [
    *(ipaddress.ip_network(f"172.{n}.0.0/16") for n in range(17, 32)),
    *ipaddress.ip_network("192.168.0.0/16").subnets(new_prefix=20),
]


class IpamError(ValueError):
    pass


def host_routes() -> list[AnyNetwork]:
    """The IPv4 destinations of the host's routing table (but the default route): a
    subnet that overlaps one of them would shadow or be shadowed by the host's route."""
    routes: list[AnyNetwork] = []
    try:
        with open("/proc/net/route") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) < 8:
                    continue
                dest = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
                mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
                if int(mask) == 0:
                    continue
                routes.append(ipaddress.ip_network(f"{dest}/{mask}", strict=False))
    except OSError:
        pass
    return routes


def overlaps(candidate: AnyNetwork, others: Iterable[AnyNetwork]) -> bool:
    return any(candidate.version == o.version and candidate.overlaps(o) for o in others)


def pick_subnet(taken: Iterable[AnyNetwork], pools: list[AnyNetwork] | None = None
                ) -> AnyNetwork:
    """The first pool that overlaps nothing taken (networks of ours and host routes)."""
    used = list(taken)
    for pool in pools or DEFAULT_POOLS:
        if not overlaps(pool, used):
            return pool
    raise IpamError("could not find an available, non-overlapping IPv4 address pool among "
                    "the defaults to assign to the network")


def parse_subnet(text: str) -> AnyNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise IpamError(f"invalid CIDR address: {text}") from None


def default_gateway(subnet: AnyNetwork) -> str:
    return str(next(subnet.hosts()) if subnet.num_addresses > 2 else subnet.network_address)


def check_in(address: str, subnet: AnyNetwork, what: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise IpamError(f"invalid {what}: {address}") from None
    if parsed not in subnet:
        raise IpamError(f"{what} {address} does not belong to subnet {subnet}")
    return str(parsed)


def allocate(subnet: AnyNetwork, taken: set[str], ip_range: AnyNetwork | None = None,
             requested: str | None = None) -> str:
    """A free address of the pool (ip_range if given, else the subnet), not the network
    or broadcast address nor anything in `taken` (the gateway and the endpoints)."""
    if requested:
        address = check_in(requested, subnet, "IP address")
        if address in taken or address in _reserved(subnet):
            raise IpamError(f"Address already in use: {address}")
        return address
    pool = ip_range or subnet
    reserved = _reserved(subnet)
    for candidate in pool.hosts() if pool.num_addresses > 2 else iter(pool):
        text = str(candidate)
        if text not in taken and text not in reserved:
            return text
    raise IpamError(f"no available IPv4 addresses on this network's address pools: {pool}")


def _reserved(subnet: AnyNetwork) -> set[str]:
    if subnet.version == 4 and subnet.num_addresses > 2:
        return {str(subnet.network_address), str(subnet.broadcast_address)}
    return {str(subnet.network_address)}


def mac_for(address: str) -> str:
    """Docker's MAC for an IPv4 address: 02:42 and the four address bytes."""
    packed = ipaddress.IPv4Address(address).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)
