"""Networks: Docker's network objects (bridge, host, none and user-defined bridges), their
address management, and each container's sandbox (network namespace) while it runs.

State on disk: one JSON file per network under <data-root>/network, written atomically; a
network's `Containers` are the endpoints of running containers, so the addresses taken are
exactly what the files say. A container's published ports live in its own record
(NetworkSettings.Ports). The firewall chains are rebuilt from both after every change and at
daemon start. Sandboxes are bound under <exec-root>/netns and go when the container stops.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import queue
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic
from ..network import (
    Binding,
    BridgeError,
    BridgeRules,
    Endpoint,
    FirewallError,
    IpamError,
    PortError,
    PortRule,
    bridge,
    ipam,
    make_firewall,
    ports,
)
from .errors import Conflict, EngineError, Forbidden, InvalidParameter, NotFound
from .timefmt import rfc3339_now

log = logging.getLogger("dockyard.networks")

PREDEFINED = ("bridge", "host", "none")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
MTU_OPTION = "com.docker.network.driver.mtu"
_PRIVATE = ("_Bridge", "_UserSubnet", "_Owned")
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


def endpoint_settings(config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Docker's EndpointSettings with what the client asked for (IPAMConfig, Aliases...)."""
    config = config or {}
    return {"IPAMConfig": config.get("IPAMConfig"), "Links": config.get("Links"),
            "Aliases": config.get("Aliases"), "MacAddress": config.get("MacAddress") or "",
            "DriverOpts": config.get("DriverOpts"), "GwPriority": config.get("GwPriority") or 0,
            "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DNSNames": None}


class Sandbox:
    """What starting a container needs from its network: the namespace for the spec
    (`netns` None: the runtime makes one, or none with `host`), its addresses for
    /etc/hosts, the --add-host entries resolved, and whether the embedded DNS serves it."""

    def __init__(self, netns: str | None = None, host: bool = False,
                 addresses: list[str] | None = None, extra_hosts: list[str] | None = None,
                 embedded_dns: bool = False, joined: str | None = None) -> None:
        self.netns = netns
        self.host = host
        self.addresses = addresses or []
        self.extra_hosts = extra_hosts or []
        self.embedded_dns = embedded_dns
        # --network container:X: X's ID; the container takes X's hostname and its
        # /etc/hostname, /etc/hosts and /etc/resolv.conf, as Docker does.
        self.joined = joined


def check_container_mode(config: dict[str, Any], host_config: dict[str, Any]) -> None:
    """What `--network container:X` cannot go with (dockerd's messages); `config` as the
    client sent it, before the image's defaults."""
    if not str(host_config.get("NetworkMode") or "").startswith("container:"):
        return
    conflicts = (
        (config.get("Hostname"), "hostname and the network mode"),
        (host_config.get("Dns"), "dns and the network mode"),
        (host_config.get("ExtraHosts"), "custom host-to-IP mapping and the network mode"),
        (host_config.get("PortBindings") or host_config.get("PublishAllPorts"),
         "port publishing and the container type network mode"),
        (config.get("ExposedPorts"), "port exposing and the container type network mode"),
    )
    for present, what in conflicts:
        if present:
            raise InvalidParameter(f"conflicting options: {what}")


class NetworkService:
    def __init__(self, options: Any, containers: Any, events: Any) -> None:
        self.options = options
        self.containers = containers
        self.events = events
        self.root: Path = options.data_root / "network"
        self.root.mkdir(parents=True, exist_ok=True)
        self.netns_root: Path = options.exec_root / "netns"
        self.default_bridge: str = getattr(options, "bridge", "dockyard0") or "dockyard0"
        self.firewall = make_firewall(getattr(options, "firewall_prefix", "DOCKYARD"),
                                      bool(getattr(options, "iptables", True)),
                                      getattr(options, "firewall_backend", ""))
        self._lock = threading.RLock()
        self._networks: dict[str, dict[str, Any]] = {}
        self._up: set[str] = set()          # bridges known to exist since our start
        self._jumps_checked = False
        self._dns: Any = None
        self._dns_tried = False
        self._unplugs: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self._unplugger: threading.Thread | None = None
        for path in sorted(self.root.glob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            self._networks[record["Id"]] = record
        self._ensure_predefined()
        # Bridges left from before (containers outlived the daemon) count as up at once:
        # exits reconciled before restore() rebuild the chains with them.
        for record in self._networks.values():
            if record["Driver"] == "bridge" and bridge.link_exists(record["_Bridge"]):
                self._up.add(record["_Bridge"])

    # -- records --------------------------------------------------------------------------

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
                self._save_new(_network_record(name, driver, {}, []))
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
            self._save_new(_network_record("bridge", "bridge", options, config))

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

    # -- create, remove, prune ------------------------------------------------------------

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("Name") or "")
        if not name:
            raise InvalidParameter("network name is required")
        if not _NAME.match(name):
            raise InvalidParameter(f"invalid name \"{name}\": only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                                   "are allowed")
        driver = body.get("Driver") or "bridge"
        with self._lock:
            if any(r["Name"] == name for r in self._networks.values()):
                raise Conflict(f"network with name {name} already exists")
            if name in PREDEFINED:
                raise Forbidden(f"operation is not permitted on predefined {name} network")
            if driver != "bridge":
                raise NotFound(f"plugin \"{driver}\" not found")
            options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
            mtu = options.get(MTU_OPTION)
            if mtu is not None and not mtu.isdigit():
                raise InvalidParameter(f"invalid MTU value: {mtu}")
            bridge_name = options.get(BRIDGE_NAME_OPTION)
            if bridge_name is not None and not (0 < len(bridge_name) < 16):
                raise InvalidParameter(f"invalid bridge name: {bridge_name}")
            if bridge_name and any(r["_Bridge"] == bridge_name for r in
                                   self._networks.values()):
                raise Conflict(f"bridge name {bridge_name} is in use by another network")
            config = self._ipam_config(body)
            user_subnet = any((c or {}).get("Subnet") for c in
                              (body.get("IPAM") or {}).get("Config") or [])
            record = _network_record(name, "bridge", options, config,
                                     internal=bool(body.get("Internal")),
                                     attachable=bool(body.get("Attachable")),
                                     ipv6=bool(body.get("EnableIPv6")),
                                     labels=body.get("Labels") or {})
            record["_UserSubnet"] = user_subnet
            self._save_new(record)
        self.events.emit("network", "create", record["Id"], {"name": name, "type": "bridge"})
        return record

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

    def remove(self, ref: str) -> None:
        with self._lock:
            record = self.find(ref)
            if record["Name"] in PREDEFINED:
                raise Forbidden(f"{record['Name']} is a pre-defined network and cannot be "
                                "removed")
            if record["Containers"]:
                raise Forbidden(f"error while removing network: network {record['Name']} id "
                                f"{record['Id']} has active endpoints")
            (self.root / f"{record['Id']}.json").unlink(missing_ok=True)
            del self._networks[record["Id"]]
            if record["_Bridge"] in self._up:
                if record.get("_Owned"):
                    bridge.delete_link(record["_Bridge"])
                self._up.discard(record["_Bridge"])
                self._apply_firewall()
        self.events.emit("network", "destroy", record["Id"],
                         {"name": record["Name"], "type": "bridge"})

    def prune(self, keep: Any = None) -> list[str]:
        """Removes user-defined networks no container refers to; their names."""
        used = set()
        for container in self.containers.store.all():
            used.update((container.get("NetworkSettings") or {}).get("Networks") or {})
            used.add(container["HostConfig"].get("NetworkMode") or "")
        removed = []
        for record in self.all():
            if record["Name"] in PREDEFINED or record["Name"] in used or record["Id"] in used:
                continue
            if keep is not None and not keep(record):
                continue
            try:
                self.remove(record["Id"])
            except EngineError:
                continue
            removed.append(record["Name"])
        return removed

    # -- bridges and the firewall ---------------------------------------------------------

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
        port_rules = _port_rules(starting) if starting is not None else []
        for container in self.containers.store.all():
            if container["State"]["Running"] and container["Id"] != stopping and \
                    container is not starting:
                port_rules += _port_rules(container)
        try:
            self.firewall.apply(rules, port_rules, check_jumps=not self._jumps_checked,
                                ports_only=starting is not None or bool(stopping))
            self._jumps_checked = True
        except FirewallError as e:
            raise EngineError(str(e)) from None

    def restore(self) -> None:
        """At daemon start: endpoints of containers that no longer run are released, the
        bridges in use exist, and the firewall is rebuilt from the state."""
        with self._lock:
            running = {r["Id"] for r in self.containers.store.all() if r["State"]["Running"]}
            for record in self._networks.values():
                stale = [cid for cid in record["Containers"] if cid not in running]
                for cid in stale:
                    bridge.unplug(record["Containers"][cid].get("_Veth", ""))
                    del record["Containers"][cid]
                if stale:
                    self._save(record)
                if record["Containers"] and record["Driver"] == "bridge":
                    try:
                        self._ensure_bridge(record)
                    except (BridgeError, EngineError) as e:
                        log.warning("network %s: %s", record["Name"], e)
            if self._up:
                try:
                    self._apply_firewall()
                except EngineError as e:
                    log.warning("firewall: %s", e)
            for path in self.netns_root.glob("*") if self.netns_root.exists() else []:
                if path.name not in running:
                    bridge.remove_sandbox(path)
            # The embedded DNS lives in the daemon: serve the running containers again.
            on_user_networks = {cid for r in self._networks.values()
                                if r["Name"] not in PREDEFINED for cid in r["Containers"]}
            if on_user_networks and self._dns_server() is not None:
                for container in self.containers.store.all():
                    key = container["NetworkSettings"].get("SandboxKey")
                    if container["Id"] in on_user_networks and key:
                        self._dns.attach(container["Id"], key,
                                         self._upstream(container["HostConfig"]))

    def shutdown(self) -> None:
        """At a clean daemon stop with no container running: our bridges and chains go
        (recreated on demand at the next start), so a stopped daemon leaves nothing."""
        with self._lock:
            if any(r["State"]["Running"] for r in self.containers.store.all()):
                return
            for record in self._networks.values():
                if record["Driver"] == "bridge" and record.get("_Owned"):
                    try:
                        bridge.delete_link(record["_Bridge"])
                    except OSError:
                        pass
            self._up.clear()
            try:
                self.firewall.teardown()
            except FirewallError as e:
                log.warning("firewall: %s", e)
            if self._dns is not None:
                self._dns.close()

    # -- containers -----------------------------------------------------------------------

    def prepare(self, record: dict[str, Any], networking_config: dict[str, Any] | None) -> None:
        """At container create: NetworkMode and NetworkSettings.Networks as Docker fills
        them; the networks named must exist."""
        host_config = record["HostConfig"]
        mode = host_config.get("NetworkMode") or "default"
        endpoints = dict((networking_config or {}).get("EndpointsConfig") or {})
        if mode == "default":
            mode = "bridge" if self.default_bridge != "none" else "none"
            if "default" in endpoints:
                endpoints[mode] = endpoints.pop("default")
        host_config["NetworkMode"] = mode
        if mode.startswith("container:"):
            self.containers.store.get(mode.partition(":")[2])
            record["NetworkSettings"]["Networks"] = {}
            if host_config.get("PortBindings") or host_config.get("PublishAllPorts"):
                raise InvalidParameter("conflicting options: port publishing and the "
                                       "container type network mode")
            return
        network = self.find(mode)
        if network["Driver"] in ("host", "null") and len(endpoints) > 1:
            raise InvalidParameter(f"container cannot be connected to network endpoints: "
                                   f"{', '.join(endpoints)}")
        networks: dict[str, Any] = {}
        first = endpoints.pop(mode, None) or endpoints.pop(network["Id"], None) or {}
        networks[network["Name"]] = self._checked_endpoint(network, first)
        for ref, config in endpoints.items():
            other = self.find(ref)
            networks[other["Name"]] = self._checked_endpoint(other, config or {})
        record["NetworkSettings"]["Networks"] = networks

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

    def attach(self, record: dict[str, Any]) -> Sandbox:
        """At container start, before the runtime's create: its namespace, endpoints and
        published ports. On failure nothing is left."""
        host_config = record["HostConfig"]
        mode = host_config.get("NetworkMode") or "default"
        extra_hosts = self._extra_hosts(host_config.get("ExtraHosts") or [])
        if mode == "host":
            return Sandbox(host=True, extra_hosts=extra_hosts)
        if mode.startswith("container:"):
            other = self.containers.store.get(mode.partition(":")[2])
            if not other["State"]["Running"]:
                raise Conflict(f"cannot join network namespace of a non running container: "
                               f"container {other['Id']} is {other['State']['Status']}")
            key = other["NetworkSettings"].get("SandboxKey") or \
                f"/proc/{other['State']['Pid']}/ns/net"
            return Sandbox(netns=key, extra_hosts=extra_hosts, joined=other["Id"])
        settings = record["NetworkSettings"]
        networks = [(name, self.find(settings["Networks"][name].get("NetworkID") or name))
                    for name in settings.get("Networks") or {}]
        bridged = [(name, n) for name, n in networks if n["Driver"] == "bridge"]
        if not bridged:
            return Sandbox(extra_hosts=extra_hosts)   # none: the runtime's own namespace
        container_id = record["Id"]
        path = self.netns_root / container_id
        started = time.perf_counter()
        with self._lock:
            endpoints: list[Endpoint] = []
            entries: list[tuple[dict[str, Any], dict[str, Any], Endpoint]] = []
            try:
                for index, (name, network) in enumerate(bridged):
                    self._ensure_bridge(network)
                    endpoint = self._allocate(record, network, settings["Networks"][name],
                                              f"eth{index}", gateway=index == 0)
                    endpoints.append(endpoint)
                    entries.append((network, settings["Networks"][name], endpoint))
                self.netns_root.mkdir(parents=True, exist_ok=True)
                bridge.create_sandbox(path, endpoints)
                settings["SandboxKey"] = str(path)
                settings["SandboxID"] = secrets.token_hex(32)
                self._publish(record, entries[0][2])
            except (BridgeError, IpamError, PortError, FirewallError, OSError) as e:
                self._release(record, [network for network, _, _ in entries])
                if bridge.sandbox_exists(path):
                    bridge.remove_sandbox(path)
                raise EngineError(str(e)) from None
            except EngineError:
                self._release(record, [network for network, _, _ in entries])
                if bridge.sandbox_exists(path):
                    bridge.remove_sandbox(path)
                raise
            for network, _, _ in entries:
                self._save(network)
            self._legacy_fields(record)
        log.debug("network attach of %s: %.1f ms", container_id[:12],
                  (time.perf_counter() - started) * 1000)
        addresses = [e.addresses[0].partition("/")[0] for e in endpoints]
        user = [n for _, n in bridged if n["Name"] != "bridge"]
        dns = self._dns_server() if user else None
        if dns is not None:
            dns.attach(container_id, str(path), self._upstream(host_config))
        for network, _, _ in entries:
            self.events.emit("network", "connect", network["Id"],
                             {"container": container_id, "name": network["Name"],
                              "type": "bridge"})
        return Sandbox(netns=str(path), addresses=addresses[:1], extra_hosts=extra_hosts,
                       embedded_dns=dns is not None)

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

    def _publish(self, record: dict[str, Any], endpoint: Endpoint) -> None:
        host_config = record["HostConfig"]
        exposed = record["Config"].get("ExposedPorts") or {}
        wanted = ports.wanted_bindings(host_config.get("PortBindings"), exposed,
                                       bool(host_config.get("PublishAllPorts")))
        taken = {(b.proto, b.host_port) for other in self.containers.store.all()
                 if other["State"]["Running"] and other["Id"] != record["Id"]
                 for b in _bindings(other)}
        chosen = ports.choose(wanted, taken)
        record["NetworkSettings"]["Ports"] = ports.ports_view(exposed, chosen)
        del endpoint  # the target is the first network's address (see _port_rules)
        if chosen:
            self._apply_firewall(starting=record)

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

    def detach(self, record: dict[str, Any]) -> None:
        """At container stop (or a failed start, or removal): endpoints, ports, namespace
        and the DNS go; the record keeps its networks, without addresses."""
        container_id = record["Id"]
        settings = record.get("NetworkSettings") or {}
        started = time.perf_counter()
        veths: list[str] = []
        with self._lock:
            touched = []
            for network in self._networks.values():
                if container_id in network["Containers"]:
                    self._release(record, [network], later=veths)
                    self._save(network)
                    touched.append(network)
            had_ports = bool(_port_rules(record))
            path = self.netns_root / container_id
            if path.exists() or bridge.sandbox_exists(path):
                bridge.remove_sandbox(path)
            if self._dns is not None:
                try:
                    self._dns.detach(container_id)
                except Exception:  # noqa: BLE001 - a DNS hiccup must not block a stop
                    pass
            for endpoint in (settings.get("Networks") or {}).values():
                endpoint.update(EndpointID="", Gateway="", IPAddress="", IPPrefixLen=0,
                                IPv6Gateway="", GlobalIPv6Address="", GlobalIPv6PrefixLen=0,
                                MacAddress="", DNSNames=None)
            if settings:
                settings.update(SandboxKey="", SandboxID="", Ports={})
                self._legacy_fields(record)
            if had_ports:
                try:
                    self._apply_firewall(stopping=container_id)
                except EngineError as e:
                    log.warning("firewall: %s", e)
        if veths:
            self._unplug_later(veths)
        log.debug("network detach of %s: %.1f ms", container_id[:12],
                  (time.perf_counter() - started) * 1000)
        for network in touched:
            self.events.emit("network", "disconnect", network["Id"],
                             {"container": container_id, "name": network["Name"],
                              "type": "bridge"})

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

    # -- connect and disconnect -----------------------------------------------------------

    def connect(self, ref: str, container_ref: str, config: dict[str, Any] | None) -> None:
        network = self.find(ref)
        container = self.containers.store.get(container_ref)
        mode = container["HostConfig"].get("NetworkMode") or ""
        if mode == "host" or mode == "none" or mode.startswith("container:"):
            raise Forbidden(f"container cannot be disconnected from host network or connected "
                            f"to {mode} network" if mode == "host" else
                            "container sharing network namespace with another container or "
                            "host cannot be connected to any other network")
        if network["Driver"] != "bridge":
            raise Forbidden(f"container cannot be disconnected from host network or connected "
                            f"to {network['Name']} network")
        with self.containers.transition(container["Id"]), self._lock:
            networks = container["NetworkSettings"].setdefault("Networks", {})
            if network["Name"] in networks:
                raise Forbidden(f"endpoint with name {container['Name'].lstrip('/')} already "
                                f"exists in network {network['Name']}")
            settings = self._checked_endpoint(network, config or {})
            if container["State"]["Running"] and container["NetworkSettings"].get("SandboxKey"):
                used = {e.get("_Interface") for n in self._networks.values()
                        for cid, e in n["Containers"].items() if cid == container["Id"]}
                interface = next(f"eth{i}" for i in range(64) if f"eth{i}" not in used)
                try:
                    self._ensure_bridge(network)
                    endpoint = self._allocate(container, network, settings, interface,
                                              gateway=False)
                    bridge.plug(container["NetworkSettings"]["SandboxKey"], [endpoint])
                except (BridgeError, IpamError) as e:
                    self._release(container, [network])
                    raise EngineError(str(e)) from None
                self._save(network)
                if self._dns_server() is not None and network["Name"] != "bridge":
                    self._dns.attach(container["Id"], container["NetworkSettings"]
                                     ["SandboxKey"], self._upstream(container["HostConfig"]))
            elif container["State"]["Running"]:
                raise Forbidden("the container has no network namespace of the daemon's to "
                                "connect")
            networks[network["Name"]] = settings
            self._legacy_fields(container)
            self.containers.store.save(container)
        self.events.emit("network", "connect", network["Id"],
                         {"container": container["Id"], "name": network["Name"],
                          "type": "bridge"})

    def disconnect(self, ref: str, container_ref: str, force: bool = False) -> None:
        network = self.find(ref)
        try:
            container = self.containers.store.get(container_ref)
        except NotFound:
            if force:
                with self._lock:
                    for cid, entry in list(network["Containers"].items()):
                        if entry["Name"] == container_ref or cid.startswith(container_ref):
                            bridge.unplug(entry.get("_Veth", ""))
                            del network["Containers"][cid]
                    self._save(network)
                return
            raise
        with self.containers.transition(container["Id"]), self._lock:
            networks = container["NetworkSettings"].get("Networks") or {}
            if network["Name"] not in networks:
                raise Forbidden(f"container {container['Id']} is not connected to network "
                                f"{network['Name']}")
            if network["Driver"] != "bridge":
                raise Forbidden(f"container cannot be disconnected from {network['Name']} "
                                "network")
            self._release(container, [network])
            self._save(network)
            del networks[network["Name"]]
            self._legacy_fields(container)
            self.containers.store.save(container)
        self.events.emit("network", "disconnect", network["Id"],
                         {"container": container["Id"], "name": network["Name"],
                          "type": "bridge"})

    # -- names (hosts file, embedded DNS) -------------------------------------------------

    def _extra_hosts(self, entries: list[str]) -> list[str]:
        result = []
        for entry in entries:
            name, sep, address = entry.partition(":") if ":" in entry else entry.partition("=")
            if address == "host-gateway":
                address = self._host_gateway()
            result.append(f"{name}{sep}{address}")
        return result

    def _host_gateway(self) -> str:
        host_gateway_ip = getattr(self.options, "host_gateway_ip", None)
        if host_gateway_ip:
            return str(host_gateway_ip)
        for record in self._networks.values():
            if record["Name"] == "bridge":
                return str(record["IPAM"]["Config"][0]["Gateway"])
        raise InvalidParameter("unable to derive the IP value for host-gateway")

    def resolve(self, container_id: str, name: str, qtype: int) -> list[str]:
        """Addresses of `name` for a container: the names, aliases and host names of the
        containers that share a user-defined network with it."""
        wanted = name.rstrip(".").lower()
        result: list[str] = []
        with self._lock:
            for network in self._networks.values():
                if network["Name"] in PREDEFINED or container_id not in network["Containers"]:
                    continue
                for cid, entry in network["Containers"].items():
                    if wanted not in self._names_of(cid, network):
                        continue
                    key = "IPv4Address" if qtype == 1 else "IPv6Address"
                    if entry.get(key):
                        result.append(entry[key].partition("/")[0])
        return result

    def reverse(self, container_id: str, address: str) -> str | None:
        with self._lock:
            for network in self._networks.values():
                if network["Name"] in PREDEFINED or container_id not in network["Containers"]:
                    continue
                for entry in network["Containers"].values():
                    for key in ("IPv4Address", "IPv6Address"):
                        if entry.get(key) and entry[key].partition("/")[0] == address:
                            return f"{entry['Name']}.{network['Name']}"
        return None

    def _names_of(self, container_id: str, network: dict[str, Any]) -> set[str]:
        try:
            record = self.containers.store.get(container_id)
        except NotFound:
            return set()
        endpoint = (record["NetworkSettings"].get("Networks") or {}).get(network["Name"]) or {}
        names = {record["Name"].lstrip("/"), container_id[:12]}
        names.update(endpoint.get("Aliases") or [])
        hostname = record["Config"].get("Hostname")
        if hostname:
            names.add(hostname)
        return {n.lower() for n in names}

    def _dns_server(self) -> Any:
        if not self._dns_tried:
            self._dns_tried = True
            try:
                from ..network.dns import EmbeddedDNS  # type: ignore[import-not-found]
            except ImportError:
                return None
            self._dns = EmbeddedDNS(self.resolve, self.reverse)
            self._dns.start()
        return self._dns

    def embedded_dns_available(self) -> bool:
        return self._dns_server() is not None

    def _upstream(self, host_config: dict[str, Any]) -> list[tuple[str, int]]:
        from .etc_files import resolv_conf

        text = resolv_conf({k: v for k, v in host_config.items() if k == "Dns"})
        return [(line.split()[1], 53) for line in text.splitlines()
                if line.startswith("nameserver")]


def _unplug_forever(veths: queue.SimpleQueue[list[str]]) -> None:
    while True:
        for veth in veths.get():
            bridge.unplug(veth)


def _bindings(record: dict[str, Any]) -> list[Binding]:
    result = []
    for key, bound in (record["NetworkSettings"].get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        for b in bound or []:
            result.append(Binding(proto or "tcp", int(port), b.get("HostIp") or "0.0.0.0",
                                  int(b["HostPort"])))
    return result


def _port_rules(record: dict[str, Any]) -> list[PortRule]:
    """DNAT to the container's address on its first network, as Docker does."""
    networks = (record.get("NetworkSettings") or {}).get("Networks") or {}
    target = next((e.get("IPAddress") for e in networks.values() if e.get("IPAddress")), "")
    if not target:
        return []
    return [PortRule(b.proto, b.host_ip, b.host_port, target, b.port)
            for b in _bindings(record)]


def _network_record(name: str, driver: str, options: dict[str, str],
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
