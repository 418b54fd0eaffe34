"""The /etc/hostname, /etc/hosts and /etc/resolv.conf a container gets, as Docker writes
them (bind-mounted from the container's directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atomicfile import write_atomic

_HOST_RESOLV_CONF = Path("/etc/resolv.conf")
# Where systemd-resolved keeps the real upstream servers when /etc/resolv.conf points at
# its stub on 127.0.0.53 (unreachable from a container's own network namespace).
_RESOLVED_UPSTREAM = Path("/run/systemd/resolve/resolv.conf")
_DEFAULT_DNS = ("8.8.8.8", "8.8.4.4")  # Docker's fallback when the host has none usable


def write_etc_files(directory: Path, hostname: str, domainname: str, host_config: dict[str, Any],
                    addresses: list[str], embedded_dns: bool = False) -> None:
    write_atomic(directory / "hostname", hostname + "\n")
    write_atomic(directory / "hosts", hosts_file(hostname, domainname,
                                                 host_config.get("ExtraHosts") or [], addresses))
    write_atomic(directory / "resolv.conf", resolv_conf(host_config, embedded_dns))


def hosts_file(hostname: str, domainname: str, extra_hosts: list[str],
               addresses: list[str]) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::\tip6-localnet",
        "ff00::\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for entry in extra_hosts:
        name, sep, address = entry.partition(":")
        if not sep:
            continue
        lines.append(f"{address}\t{name}")
    names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
    for address in addresses:
        lines.append(f"{address}\t{names}")
    return "\n".join(lines) + "\n"


def resolv_conf(host_config: dict[str, Any], embedded_dns: bool = False) -> str:
    source = _host_resolv_conf()
    nameservers = [line.split()[1] for line in source.splitlines()
                   if line.startswith("nameserver") and len(line.split()) > 1]
    # A loopback resolver of the host is not reachable from the container's network
    # namespace: Docker drops them, as here.
    nameservers = [ns for ns in nameservers if not ns.startswith("127.") and ns != "::1"]
    searches = [line.split()[1:] for line in source.splitlines() if line.startswith("search")]
    options = [line.split()[1:] for line in source.splitlines() if line.startswith("options")]
    if host_config.get("Dns"):
        nameservers = list(host_config["Dns"])
    elif not nameservers:
        nameservers = list(_DEFAULT_DNS)
    search = list(host_config.get("DnsSearch") or (searches[-1] if searches else []))
    option = list(host_config.get("DnsOptions") or (options[-1] if options else []))
    if embedded_dns:
        # User-defined networks: the daemon's DNS server answers inside the container and
        # forwards the rest to `nameservers` (Docker's 127.0.0.11, ndots:0).
        nameservers = ["127.0.0.11"]
        if not host_config.get("DnsOptions"):
            option = ["ndots:0", *[o for o in option if not o.startswith("ndots:")]]
    lines = [f"nameserver {ns}" for ns in nameservers]
    if search:
        lines.append("search " + " ".join(search))
    if option:
        lines.append("options " + " ".join(option))
    return "\n".join(lines) + "\n"


def _host_resolv_conf() -> str:
    for path in (_HOST_RESOLV_CONF, _RESOLVED_UPSTREAM):
        try:
            text = path.read_text()
        except OSError:
            continue
        if path == _HOST_RESOLV_CONF and "nameserver 127.0.0.53" in text and \
                _RESOLVED_UPSTREAM.exists():
            continue
        return text
    return ""
