"""The daemon's settings that the engine needs (from flags and daemon.json)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DEFAULT_RUNTIME = "dockyard-runc"


class EngineOptions:
    def __init__(self, data_root: Path, exec_root: Path, runtime: str = DEFAULT_RUNTIME,
                 runtimes: dict[str, str] | None = None, log_max_size: int = 10 << 20,
                 log_max_files: int = 3, cgroup_parent: str = "/dockyard",
                 insecure_registries: list[str] | None = None,
                 registry_mirrors: list[str] | None = None, bridge: str = "dockyard0",
                 bip: str | None = None, iptables: bool = True, ip_forward: bool = True,
                 firewall_prefix: str = "DOCKYARD", firewall_backend: str = "") -> None:
        self.data_root = data_root
        self.exec_root = exec_root
        self.default_runtime = runtime
        self.runtimes = {"dockyard-runc": "dockyard-runc", "runc": "runc", "crun": "crun",
                         **(runtimes or {})}
        self.log_max_size = log_max_size
        self.log_max_files = log_max_files
        self.cgroup_parent = cgroup_parent
        self.insecure_registries = insecure_registries or []
        self.registry_mirrors = registry_mirrors or []
        # Networking (dockerd's --bridge/-b, --bip, --iptables, --ip-forward); the prefix
        # of the firewall chains lets two daemons share a host.
        self.bridge = bridge
        self.bip = bip
        self.iptables = iptables
        self.ip_forward = ip_forward
        self.firewall_prefix = firewall_prefix
        self.firewall_backend = firewall_backend    # iptables | nftables | "" (detected)

    def runtime_path(self, name: str | None) -> str:
        """The binary for a runtime name (default: the daemon's --runtime)."""
        name = name or self.default_runtime
        target = self.runtimes.get(name, name)
        if "/" in target:
            return target
        if target == DEFAULT_RUNTIME:
            # The one installed beside this interpreter (a venv's bin) first.
            sibling = Path(sys.executable).parent / DEFAULT_RUNTIME
            if sibling.exists():
                return str(sibling)
        found = shutil.which(target)
        if found is None:
            from .errors import InvalidParameter

            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return found
