"""What starting a container takes from its network (the Sandbox), and what
`--network container:X` cannot go with."""

from __future__ import annotations

from typing import Any

from .errors import InvalidParameter


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
