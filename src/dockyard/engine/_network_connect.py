"""`docker network connect` and `disconnect`: a container joins or leaves a network, while
it runs (an endpoint plugged into its sandbox) or before it starts."""

from __future__ import annotations

from typing import Any

from ..network import BridgeError, IpamError, bridge
from ._network_endpoints import EndpointAllocation
from ._network_firewall import BridgeFirewall
from ._network_names import NameResolution
from .errors import EngineError, Forbidden, NotFound


class NetworkConnections(BridgeFirewall, NameResolution, EndpointAllocation):
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
