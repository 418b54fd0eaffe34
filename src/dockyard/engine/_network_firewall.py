"""Bridges and the firewall: a network's bridge is made when a container first needs it,
and our chains are rebuilt from the state (the bridges up, the published ports of the
running containers) after every change."""

from __future__ import annotations

import ipaddress
from typing import Any

from ..network import BridgeRules, Endpoint, FirewallError, bridge
from ._network_ports import choose_host_ports, dnat_rules
from ._network_records import MTU_OPTION, NetworkRecords
from .errors import EngineError


class BridgeFirewall(NetworkRecords):
    firewall: Any
    _up: set[str]
    _jumps_checked: bool

    def _ensure_bridge(self, record: dict[str, Any]) -> None:
        name = record["_Bridge"]
        if name in self._up:
            return
        addresses = []
        for config in record["IPAM"]["Config"]:
            prefix = ipaddress.ip_network(config["Subnet"]).prefixlen
            addresses.append(f"{config['Gateway']}/{prefix}")
        mtu = int(record["Options"].get(MTU_OPTION) or 0)
        if getattr(self.options, "ip_forward", True):
            bridge.enable_ip_forward()
        if bridge.ensure_bridge(name, addresses, mtu if mtu != 1500 else 0) and \
                not record.get("_Owned"):
            # Ours to remove (at network rm, or a clean stop); a device that was there
            # before (a bridge of the host's given with -b) is only used.
            record["_Owned"] = True
            self._save(record)
        self._up.add(name)
        self._apply_firewall()

    def _apply_firewall(self, starting: dict[str, Any] | None = None,
                        stopping: str = "") -> None:
        """Our chains from the state: the bridges up and the ports of running containers
        (with `starting`, not marked running yet, and without `stopping`)."""
        rules = []
        for record in self._networks.values():
            if record["Driver"] == "bridge" and record["_Bridge"] in self._up:
                subnets = [c["Subnet"] for c in record["IPAM"]["Config"]
                           if ipaddress.ip_network(c["Subnet"]).version == 4]
                masquerade = record["Options"].get(
                    "com.docker.network.bridge.enable_ip_masquerade", "true") == "true"
                rules.append(BridgeRules(record["_Bridge"], subnets[0], record["Internal"],
                                         masquerade))
        port_rules = dnat_rules(starting) if starting is not None else []
        for container in self.containers.store.all():
            if container["State"]["Running"] and container["Id"] != stopping and \
                    container is not starting:
                port_rules += dnat_rules(container)
        try:
            self.firewall.apply(rules, port_rules, check_jumps=not self._jumps_checked,
                                ports_only=starting is not None or bool(stopping))
            self._jumps_checked = True
        except FirewallError as e:
            raise EngineError(str(e)) from None

    def _publish(self, record: dict[str, Any], endpoint: Endpoint) -> None:
        published = choose_host_ports(record, self.containers.store.all())
        del endpoint  # the target is the first network's address (see dnat_rules)
        if published:
            self._apply_firewall(starting=record)
