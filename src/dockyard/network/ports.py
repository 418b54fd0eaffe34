"""Published ports: from Docker's PortBindings (and -P's exposed ports) to concrete
bindings, with host ports chosen for those left to the daemon."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

# Docker's (Linux's default) ephemeral range is where -P's host ports come from.
_EPHEMERAL = "/proc/sys/net/ipv4/ip_local_port_range"


class PortError(ValueError):
    pass


@dataclass(frozen=True)
class Binding:
    proto: str
    port: int             # the container's
    host_ip: str          # "0.0.0.0" for every address
    host_port: int

    @property
    def key(self) -> str:
        return f"{self.port}/{self.proto}"


def parse_port_key(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise PortError(f"invalid proto: {proto}")
    try:
        number = int(port)
    except ValueError:
        raise PortError(f"invalid port: {key}") from None
    if not 0 < number < 65536:
        raise PortError(f"invalid port: {key}")
    return number, proto


def wanted_bindings(port_bindings: dict[str, Any] | None, exposed: dict[str, Any] | None,
                    publish_all: bool) -> list[tuple[int, str, str, int]]:
    """(port, proto, host_ip, host_port or 0) for each binding asked for; -P adds every
    exposed port that has no binding, with a port of the daemon's choosing."""
    result: list[tuple[int, str, str, int]] = []
    for key, bindings in (port_bindings or {}).items():
        port, proto = parse_port_key(key)
        for binding in bindings or [{}]:
            host_ip = (binding or {}).get("HostIp") or "0.0.0.0"
            text = str((binding or {}).get("HostPort") or "")
            low, _, high = text.partition("-")
            try:
                host_port = int(low) if low else 0
            except ValueError:
                raise PortError(f"invalid host port: {text}") from None
            if high and int(high) != host_port:
                # A host range for one container port: the first free port of it.
                host_port = -int(low) * 100000 - int(high)
            result.append((port, proto, host_ip, host_port))
    if publish_all:
        bound = {(p, proto) for p, proto, _, _ in result}
        for key in exposed or {}:
            port, proto = parse_port_key(key)
            if (port, proto) not in bound:
                result.append((port, proto, "0.0.0.0", 0))
    return result


def _range() -> tuple[int, int]:
    try:
        with open(_EPHEMERAL) as f:
            low, high = (int(x) for x in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def host_port_free(proto: str, host_ip: str, port: int) -> bool:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host_ip if host_ip != "0.0.0.0" else "", port))
        except OSError:
            return False
    return True


def choose(wanted: list[tuple[int, str, str, int]],
           taken: set[tuple[str, int]]) -> list[Binding]:
    """Concrete bindings; `taken` holds (proto, host port) already published by the daemon
    (updated). A port chosen by the daemon is one the host does not use either."""
    result: list[Binding] = []
    for port, proto, host_ip, host_port in wanted:
        if host_port > 0:
            if (proto, host_port) in taken:
                raise PortError(f"Bind for {host_ip}:{host_port} failed: port is already "
                                "allocated")
            chosen = host_port
        else:
            if host_port < 0:   # a range low-high
                low, high = divmod(-host_port, 100000)
            else:
                low, high = _range()
            chosen = next((candidate for candidate in range(low, high + 1)
                           if (proto, candidate) not in taken
                           and host_port_free(proto, host_ip, candidate)), 0)
            if not chosen:
                raise PortError(f"Bind for {host_ip}:{low}-{high} failed: all ports are "
                                "allocated")
        taken.add((proto, chosen))
        result.append(Binding(proto, port, host_ip, chosen))
    return result


def ports_view(exposed: dict[str, Any] | None, bindings: list[Binding]) -> dict[str, Any]:
    """NetworkSettings.Ports as Docker shows it: every exposed port, null if unpublished."""
    view: dict[str, Any] = {key: None for key in exposed or {}}
    for b in bindings:
        view.setdefault(b.key, None)
        view[b.key] = (view[b.key] or []) + [{"HostIp": b.host_ip,
                                              "HostPort": str(b.host_port)}]
    return view
