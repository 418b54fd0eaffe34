"""A container's networking over its life: NetworkSettings at create, then at start its
sandbox (network namespace), endpoints and published ports, which go again at stop."""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

from ..network import BridgeError, Endpoint, FirewallError, IpamError, PortError, bridge
from ._network_endpoints import EndpointAllocation
from ._network_firewall import BridgeFirewall
from ._network_names import NameResolution
from ._network_ports import dnat_rules
from ._network_sandbox import Sandbox
from .errors import Conflict, EngineError, InvalidParameter

log = logging.getLogger("dockyard.networks")


class ContainerNetworking(BridgeFirewall, NameResolution, EndpointAllocation):
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
            had_ports = bool(dnat_rules(record))
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
