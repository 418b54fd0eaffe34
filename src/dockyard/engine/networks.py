"""Networks: Docker's network objects (bridge, host, none and user-defined bridges), their
address management, and each container's sandbox (network namespace) while it runs.

State on disk: one JSON file per network under <data-root>/network, written atomically; a
network's `Containers` are the endpoints of running containers, so the addresses taken are
exactly what the files say. A container's published ports live in its own record
(NetworkSettings.Ports). The firewall chains are rebuilt from both after every change and at
daemon start. Sandboxes are bound under <exec-root>/netns and go when the container stops.

NetworkService is the facade the engine and the API use: it owns the state and the network
lifecycle (create, remove, prune, restore, shutdown); the rest lives in the _network_*
modules it is composed of (records, firewall, ports, endpoints, attach, connect, names).
Those parts are base classes rather than separate objects because they share one lock and
one set of records: an attach takes the lock once for the bridge, endpoints and ports.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
from pathlib import Path
from typing import Any

from ..network import BridgeError, FirewallError, bridge, make_firewall
from ._network_attach import ContainerNetworking
from ._network_connect import NetworkConnections
from ._network_endpoints import endpoint_settings
from ._network_records import BRIDGE_NAME_OPTION, MTU_OPTION, PREDEFINED, network_record
from ._network_sandbox import Sandbox, check_container_mode
from .errors import Conflict, EngineError, Forbidden, InvalidParameter, NotFound

# What other modules import from here, where it was before the split.
__all__ = ["BRIDGE_NAME_OPTION", "MTU_OPTION", "PREDEFINED", "NetworkService", "Sandbox",
           "check_container_mode", "endpoint_settings"]

log = logging.getLogger("dockyard.networks")

_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")


class NetworkService(ContainerNetworking, NetworkConnections):
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
            record = network_record(name, "bridge", options, config,
                                    internal=bool(body.get("Internal")),
                                    attachable=bool(body.get("Attachable")),
                                    ipv6=bool(body.get("EnableIPv6")),
                                    labels=body.get("Labels") or {})
            record["_UserSubnet"] = user_subnet
            self._save_new(record)
        self.events.emit("network", "create", record["Id"], {"name": name, "type": "bridge"})
        return record

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

    # -- daemon start and stop ------------------------------------------------------------

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
