"""Endpoints: a container's settings on one network (what the client asked for, checked),
its address and MAC on that network's bridge, and their release when it stops."""

from __future__ import annotations

import ipaddress
import queue
import secrets
import threading
from typing import Any

from ..network import Endpoint, IpamError, bridge, ipam
from ._network_records import MTU_OPTION, NetworkRecords
from .errors import InvalidParameter


def endpoint_settings(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Docker's EndpointSettings with what the client asked for (IPAMConfig, Aliases...)."""
    config = config or {}
    return {"IPAMConfig": config.get("IPAMConfig"), "Links": config.get("Links"),
            "Aliases": config.get("Aliases"), "MacAddress": config.get("MacAddress") or "",
            "DriverOpts": config.get("DriverOpts"), "GwPriority": config.get("GwPriority") or 0,
            "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DNSNames": None}


class EndpointAllocation(NetworkRecords):
    _unplugs: queue.SimpleQueue[list[str]]
    _unplugger: threading.Thread | None

    def _checked_endpoint(self, network: dict[str, Any], config: dict[str, Any]
                          ) -> dict[str, Any]:
        settings = endpoint_settings(config)
        wanted = (settings.get("IPAMConfig") or {}).get("IPv4Address")
        if wanted:
            if network["Name"] == "bridge" or network["Driver"] != "bridge" or \
                    not network.get("_UserSubnet"):
                raise InvalidParameter("user specified IP address is supported only when "
                                       "connecting to networks with user configured subnets")
            try:
                subnet = ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])
                ipam.check_in(wanted, subnet, "IP address")
            except IpamError as e:
                raise InvalidParameter(str(e)) from None
        if settings.get("Aliases") and network["Name"] in ("bridge", "host", "none"):
            raise InvalidParameter("network-scoped alias is supported only for containers in "
                                   "user defined networks")
        settings["NetworkID"] = network["Id"]
        return settings

    def _allocate(self, record: dict[str, Any], network: dict[str, Any],
                  settings: dict[str, Any], interface: str, gateway: bool) -> Endpoint:
        container_id = record["Id"]
        v4 = [c for c in network["IPAM"]["Config"]
              if ipaddress.ip_network(c["Subnet"]).version == 4][0]
        subnet = ipaddress.ip_network(v4["Subnet"])
        taken = {v4["Gateway"]} | {e["IPv4Address"].partition("/")[0]
                                   for e in network["Containers"].values()} | \
            set((v4.get("AuxiliaryAddresses") or {}).values())
        wanted = (settings.get("IPAMConfig") or {}).get("IPv4Address")
        ip_range = ipaddress.ip_network(v4["IPRange"]) if v4.get("IPRange") else None
        address = ipam.allocate(subnet, taken, ip_range, wanted)
        mac = settings.get("MacAddress") or ipam.mac_for(address)
        addresses = [f"{address}/{subnet.prefixlen}"]
        v6_address, v6 = "", None
        v6s = [c for c in network["IPAM"]["Config"]
               if ipaddress.ip_network(c["Subnet"]).version == 6]
        if network.get("EnableIPv6") and v6s:
            v6 = v6s[0]
            subnet6 = ipaddress.ip_network(v6["Subnet"])
            taken6 = {v6["Gateway"]} | {e["IPv6Address"].partition("/")[0]
                                        for e in network["Containers"].values()
                                        if e.get("IPv6Address")}
            v6_address = ipam.allocate(subnet6, taken6, None,
                                       (settings.get("IPAMConfig") or {}).get("IPv6Address"))
            addresses.append(f"{v6_address}/{subnet6.prefixlen}")
        internal = network["Internal"]
        gateways = [] if internal or not gateway else \
            [v4["Gateway"]] + ([v6["Gateway"]] if v6 else [])
        mtu = int(network["Options"].get(MTU_OPTION) or 0)
        endpoint = Endpoint(network["_Bridge"], interface, addresses, gateways, mac,
                            mtu if mtu != 1500 else 0)
        endpoint_id = secrets.token_hex(32)
        name = record["Name"].lstrip("/")
        network["Containers"][container_id] = {
            "Name": name, "EndpointID": endpoint_id, "MacAddress": mac,
            "IPv4Address": addresses[0], "IPv6Address": addresses[1] if v6 else "",
            "_Veth": endpoint.veth, "_Interface": interface,
        }
        aliases = list(settings.get("Aliases") or [])
        settings.update(NetworkID=network["Id"], EndpointID=endpoint_id,
                        Gateway="" if internal else v4["Gateway"],
                        IPAddress=address, IPPrefixLen=subnet.prefixlen, MacAddress=mac,
                        IPv6Gateway=v6["Gateway"] if v6 and not internal else "",
                        GlobalIPv6Address=v6_address,
                        GlobalIPv6PrefixLen=ipaddress.ip_network(v6["Subnet"]).prefixlen
                        if v6 else 0)
        if network["Name"] != "bridge":
            settings["DNSNames"] = [name, *aliases, container_id[:12]]
        return endpoint

    def _release(self, record: dict[str, Any], networks: list[dict[str, Any]],
                 later: list[str] | None = None) -> None:
        """Frees the container's endpoints on these networks; their veths go now, or are
        added to `later` (removing a veth waits for the kernel's RCU grace period, tens of
        ms, which a stopping container need not wait for)."""
        for network in networks:
            entry = network["Containers"].pop(record["Id"], None)
            if entry is None:
                continue
            if later is not None:
                later.append(entry.get("_Veth", ""))
            else:
                bridge.unplug(entry.get("_Veth", ""))

    def _unplug_later(self, veths: list[str]) -> None:
        """Deletes veths on one long-lived thread: a thread started per stop costs the
        stopping container its start-up, and the deletions are serial in the kernel
        anyway. (The namespace is unbound already: the kernel would delete them with it.)"""
        with self._lock:
            if self._unplugger is None or not self._unplugger.is_alive():
                self._unplugger = threading.Thread(target=_unplug_forever,
                                                   args=(self._unplugs,), name="unplug",
                                                   daemon=True)
                self._unplugger.start()
        self._unplugs.put(veths)

    def _legacy_fields(self, record: dict[str, Any]) -> None:
        """The top-level IPAddress/Gateway/MacAddress... Docker fills from the default
        bridge's endpoint."""
        settings = record["NetworkSettings"]
        endpoint = (settings.get("Networks") or {}).get("bridge") or {}
        settings.update(Bridge="", HairpinMode=False, LinkLocalIPv6Address="",
                        LinkLocalIPv6PrefixLen=0, SecondaryIPAddresses=None,
                        SecondaryIPv6Addresses=None,
                        EndpointID=endpoint.get("EndpointID", ""),
                        Gateway=endpoint.get("Gateway", ""),
                        GlobalIPv6Address=endpoint.get("GlobalIPv6Address", ""),
                        GlobalIPv6PrefixLen=endpoint.get("GlobalIPv6PrefixLen", 0),
                        IPAddress=endpoint.get("IPAddress", ""),
                        IPPrefixLen=endpoint.get("IPPrefixLen", 0),
                        IPv6Gateway=endpoint.get("IPv6Gateway", ""),
                        MacAddress=endpoint.get("MacAddress", ""))


def _unplug_forever(veths: queue.SimpleQueue[list[str]]) -> None:
    while True:
        for veth in veths.get():
            bridge.unplug(veth)

