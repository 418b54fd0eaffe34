"""Networking: bridge driver, IPAM, firewall chains, port publishing, embedded DNS.

What the engine uses:
- bridge: `ensure_bridge`, `delete_link`, `link_exists`, `Endpoint`, `create_sandbox`,
  `plug`, `unplug`, `remove_sandbox`, `sandbox_exists`, `enable_ip_forward` (netlink,
  in-process; a sandbox is a network namespace bound at a path under the exec root)
- ipam: subnet choice and address allocation (pure)
- firewall: `Firewall`, `BridgeRules`, `PortRule` (our own iptables chains, rebuilt whole)
  `make_firewall` (that, or our own nftables table: --firewall-backend, detected by default)
- ports: `wanted_bindings`, `choose`, `ports_view`, `Binding`
"""

from . import bridge, firewall, ipam, ports
from .bridge import BridgeError, Endpoint
from .firewall import BridgeRules, Firewall, FirewallError, PortRule, make_firewall
from .ipam import IpamError
from .ports import Binding, PortError

__all__ = ["Binding", "BridgeError", "BridgeRules", "Endpoint", "Firewall", "FirewallError",
           "IpamError", "PortError", "PortRule", "bridge", "firewall", "ipam", "make_firewall",
           "ports"]
