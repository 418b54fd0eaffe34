"""Published ports: the host ports a starting container gets (its record's
NetworkSettings.Ports is where they live) and the DNAT rules they make."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..network import Binding, PortRule, ports


def choose_host_ports(record: dict[str, Any], containers: Iterable[dict[str, Any]]) -> bool:
    """Fills the record's NetworkSettings.Ports, avoiding the host ports of the other
    running `containers`; whether any port is published (the firewall then needs it)."""
    host_config = record["HostConfig"]
    exposed = record["Config"].get("ExposedPorts") or {}
    wanted = ports.wanted_bindings(host_config.get("PortBindings"), exposed,
                                   bool(host_config.get("PublishAllPorts")))
    taken = {(b.proto, b.host_port) for other in containers
             if other["State"]["Running"] and other["Id"] != record["Id"]
             for b in bindings(other)}
    chosen = ports.choose(wanted, taken)
    record["NetworkSettings"]["Ports"] = ports.ports_view(exposed, chosen)
    return bool(chosen)


def bindings(record: dict[str, Any]) -> list[Binding]:
    result = []
    for key, bound in (record["NetworkSettings"].get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        for b in bound or []:
            result.append(Binding(proto or "tcp", int(port), b.get("HostIp") or "0.0.0.0",
                                  int(b["HostPort"])))
    return result


def dnat_rules(record: dict[str, Any]) -> list[PortRule]:
    """DNAT to the container's address on its first network, as Docker does."""
    networks = (record.get("NetworkSettings") or {}).get("Networks") or {}
    target = next((e.get("IPAddress") for e in networks.values() if e.get("IPAddress")), "")
    if not target:
        return []
    return [PortRule(b.proto, b.host_ip, b.host_port, target, b.port)
            for b in bindings(record)]
