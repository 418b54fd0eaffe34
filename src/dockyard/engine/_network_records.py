"""Network records: one JSON file per network under <data-root>/network, written atomically,
the predefined networks (bridge, host, none), lookup by ID or name, and the address pools
(IPAM configuration) a new network gets."""

from __future__ import annotations

import ipaddress
import json
import secrets
import threading
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ..network import IpamError, bridge, ipam
from .errors import Forbidden, InvalidParameter, NotFound
from .timefmt import rfc3339_now

PREDEFINED = ("bridge", "host", "none")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
MTU_OPTION = "com.docker.network.driver.mtu"
_PRIVATE = ("_Bridge", "_UserSubnet", "_Owned")


class NetworkRecords:
    """The state every part of the network service shares (set up by NetworkService) and
    the records on disk."""

    options: Any
    containers: Any
    events: Any
    root: Path
    netns_root: Path
    default_bridge: str
    _lock: threading.RLock
    _networks: dict[str, dict[str, Any]]

    def _save(self, record: dict[str, Any], durable: bool = False) -> None:
        """Atomic always (a kill -9 leaves the old or the new file); durable (fsync) for a
        network's creation: endpoints only matter while their containers run, which a power
        loss ends anyway, and an fsync per container start would cost more than the rest."""
        write_atomic(self.root / f"{record['Id']}.json", json.dumps(record), durable=durable)

    def _ensure_predefined(self) -> None:
        names = {r["Name"]: r for r in self._networks.values()}
        bridge_enabled = self.default_bridge != "none"
        for name, driver in (("host", "host"), ("none", "null")):
            if name not in names:
                self._save_new(network_record(name, driver, {}, []))
        existing = names.get("bridge")
        if existing is not None and (not bridge_enabled or
                                     existing["_Bridge"] != self.default_bridge or
                                     self._bip_changed(existing)):
            if not existing["Containers"]:
                (self.root / f"{existing['Id']}.json").unlink(missing_ok=True)
                del self._networks[existing["Id"]]
                existing = None
        if existing is None and bridge_enabled:
            options = {"com.docker.network.bridge.default_bridge": "true",
                       "com.docker.network.bridge.enable_icc": "true",
                       "com.docker.network.bridge.enable_ip_masquerade": "true",
                       "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                       BRIDGE_NAME_OPTION: self.default_bridge,
                       MTU_OPTION: "1500"}
            # Docker's -b: an existing bridge brings its own address (unless --bip).
            bip = getattr(self.options, "bip", None) or bridge.ipv4_interface(
                self.default_bridge)
            if bip:
                interface = ipaddress.ip_interface(bip)
                config = [{"Subnet": str(interface.network), "Gateway": str(interface.ip)}]
            else:
                subnet = self._free_subnet()
                config = [{"Subnet": str(subnet), "Gateway": ipam.default_gateway(subnet)}]
            self._save_new(network_record("bridge", "bridge", options, config))

    def _bip_changed(self, record: dict[str, Any]) -> bool:
        bip = getattr(self.options, "bip", None)
        if not bip:
            return False
        interface = ipaddress.ip_interface(bip)
        config = record["IPAM"]["Config"][0]
        return config["Subnet"] != str(interface.network) or config["Gateway"] != str(
            interface.ip)

    def _save_new(self, record: dict[str, Any]) -> None:
        record["_Bridge"] = record["Options"].get(BRIDGE_NAME_OPTION) or \
            ("br-" + record["Id"][:12] if record["Driver"] == "bridge" else "")
        self._networks[record["Id"]] = record
        self._save(record, durable=True)

    def _free_subnet(self) -> ipam.AnyNetwork:
        taken = ipam.host_routes() + [
            ipam.parse_subnet(c["Subnet"]) for r in self._networks.values()
            for c in r["IPAM"]["Config"] if c.get("Subnet")]
        return ipam.pick_subnet(taken)

    def find(self, ref: str) -> dict[str, Any]:
        """By full ID, exact name, or unique ID prefix (Docker's order)."""
        with self._lock:
            if ref in self._networks:
                return self._networks[ref]
            for record in self._networks.values():
                if record["Name"] == ref:
                    return record
            matches = [r for i, r in self._networks.items() if ref and i.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidParameter(f"network {ref} is ambiguous ({len(matches)} matches "
                                       "found on name)")
            raise NotFound(f"network {ref} not found")

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._networks.values())

    def view(self, record: dict[str, Any], verbose: bool = True) -> dict[str, Any]:
        result = {k: v for k, v in record.items() if k not in _PRIVATE}
        containers = {}
        for cid, entry in record["Containers"].items():
            containers[cid] = {k: v for k, v in entry.items() if not k.startswith("_")}
        result["Containers"] = containers if verbose else {}
        return result

    def _ipam_config(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        requested = (body.get("IPAM") or {}).get("Config") or []
        others = [ipam.parse_subnet(c["Subnet"]) for r in self._networks.values()
                  for c in r["IPAM"]["Config"] if c.get("Subnet")]
        result: list[dict[str, Any]] = []
        try:
            for entry in requested:
                entry = entry or {}
                if not entry.get("Subnet"):
                    if entry.get("Gateway") or entry.get("IPRange"):
                        raise InvalidParameter("a gateway or an IP range needs a subnet "
                                               "(--subnet)")
                    continue
                subnet = ipam.parse_subnet(entry["Subnet"])
                if str(subnet) != str(entry["Subnet"]).strip() and "/" in entry["Subnet"]:
                    raise InvalidParameter(f"invalid subnet {entry['Subnet']}: it should be "
                                           f"{subnet}")
                if ipam.overlaps(subnet, others):
                    raise Forbidden("Pool overlaps with other one on this address space")
                gateway = ipam.check_in(entry["Gateway"], subnet, "gateway") \
                    if entry.get("Gateway") else ipam.default_gateway(subnet)
                item: dict[str, Any] = {"Subnet": str(subnet), "Gateway": gateway}
                if entry.get("IPRange"):
                    ip_range = ipam.parse_subnet(entry["IPRange"])
                    if not ip_range.subnet_of(subnet):  # type: ignore[arg-type]
                        raise InvalidParameter(f"IP range {ip_range} is not within subnet "
                                               f"{subnet}")
                    item["IPRange"] = str(ip_range)
                aux = entry.get("AuxiliaryAddresses") or {}
                if aux:
                    # Reserved: never given to a container (--aux-address name=ip).
                    item["AuxiliaryAddresses"] = {
                        str(k): ipam.check_in(str(v), subnet, "auxiliary address")
                        for k, v in aux.items()}
                others.append(subnet)
                result.append(item)
        except IpamError as e:
            raise InvalidParameter(str(e)) from None
        if not any(ipaddress.ip_network(c["Subnet"]).version == 4 for c in result):
            try:
                subnet = ipam.pick_subnet(others + ipam.host_routes())
            except IpamError as e:
                raise Forbidden(str(e)) from None
            result.insert(0, {"Subnet": str(subnet), "Gateway": ipam.default_gateway(subnet)})
        if body.get("EnableIPv6") and not any(
                ipaddress.ip_network(c["Subnet"]).version == 6 for c in result):
            raise InvalidParameter("--ipv6 needs an IPv6 --subnet (no default IPv6 pool)")
        return result


def network_record(name: str, driver: str, options: dict[str, str],
                   config: list[dict[str, Any]], internal: bool = False,
                   attachable: bool = False, ipv6: bool = False,
                   labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "Name": name, "Id": secrets.token_hex(32), "Created": rfc3339_now(), "Scope": "local",
        "Driver": driver, "EnableIPv4": True, "EnableIPv6": ipv6,
        "IPAM": {"Driver": "default", "Options": {} if driver == "bridge" and
                 name != "bridge" else None, "Config": config},
        "Internal": internal, "Attachable": attachable, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": {},
        "Options": options, "Labels": dict(labels or {}),
    }
