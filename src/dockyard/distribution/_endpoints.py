"""Which URLs reach a registry: its mirrors first (pulls only), then the registry over
HTTPS, and for an insecure registry HTTPS without certificate checks, then plain HTTP,
as dockerd orders them. Registries on 127.0.0.0/8 are insecure by default (dockerd's
default `insecure-registries`), and so is `localhost`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ._client import Endpoint

DOCKER_HUB = "docker.io"
_DOCKER_HUB_API = "registry-1.docker.io"
_DEFAULT_INSECURE = ("127.0.0.0/8", "::1/128")


def registry_host(domain: str) -> str:
    """The host:port to talk to for a reference's domain."""
    return _DOCKER_HUB_API if domain == DOCKER_HUB else domain


def is_insecure(host: str, insecure_registries: Iterable[str]) -> bool:
    """`host` ("name[:port]" or "[v6]:port") is listed by name, or its literal address
    (or localhost's) is in one of the insecure CIDRs. Names are not resolved: no lookup
    leaves the machine to decide this."""
    listed = list(insecure_registries)
    bare = host
    for prefix in ("http://", "https://"):
        listed = [entry.removeprefix(prefix) for entry in listed]
    if host in listed:
        return True
    if bare.startswith("["):
        bare = bare[1:].partition("]")[0]
    elif bare.count(":") == 1:
        bare = bare.partition(":")[0]
    if bare in listed:
        return True
    if bare == "localhost":
        bare = "127.0.0.1"
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        return False
    for entry in (*_DEFAULT_INSECURE, *listed):
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def endpoints(domain: str, insecure_registries: Iterable[str], mirrors: Iterable[str],
              push: bool = False) -> list[Endpoint]:
    host = registry_host(domain)
    found: list[Endpoint] = []
    if not push:
        for mirror in mirrors:
            url = mirror.rstrip("/")
            if "://" not in url:
                url = f"https://{url}"
            if url.endswith("/v2"):
                url = url[:-3]
            mirror_host = url.split("://", 1)[1]
            secure = not is_insecure(mirror_host, insecure_registries)
            found.append(Endpoint(url, verify=secure or url.startswith("http://"),
                                  mirror=True))
    if is_insecure(host, insecure_registries):
        found += [Endpoint(f"https://{host}", verify=False), Endpoint(f"http://{host}")]
    else:
        found.append(Endpoint(f"https://{host}"))
    return found
