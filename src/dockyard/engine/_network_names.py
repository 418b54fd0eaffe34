"""Names: the --add-host entries (host-gateway resolved) and the embedded DNS, which answers
a container with the names, aliases and host names of the containers on its user-defined
networks."""

from __future__ import annotations

from typing import Any

from ._network_records import PREDEFINED, NetworkRecords
from .errors import InvalidParameter, NotFound


class NameResolution(NetworkRecords):
    _dns: Any
    _dns_tried: bool

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
