"""Network commands: network create, ls, inspect, rm, prune, connect, disconnect."""

from __future__ import annotations

import sys

from ._args import Spec
from ._client import DaemonError, quote
from ._context import CommandFailed, Context
from .container import FILTER, FORMAT, confirm, encode_filters

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any

NETWORK_HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
                   "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL",
                   "Labels": "LABELS", "CreatedAt": "CREATED AT"}
NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


class NetworkRow:
    def __init__(self, data: dict[str, Any], trunc: bool) -> None:
        self.data = data
        self.trunc = trunc

    def field(self, name: str) -> Any:
        data = self.data
        if name == "ID":
            return data["Id"][:12] if self.trunc else data["Id"]
        if name == "IPv4":
            return "true" if data.get("EnableIPv4", True) else "false"
        if name == "IPv6":
            return "true" if data.get("EnableIPv6") else "false"
        if name == "Internal":
            return "true" if data.get("Internal") else "false"
        if name == "Labels":
            return ",".join(f"{k}={v}" for k, v in sorted((data.get("Labels") or {}).items()))
        if name == "CreatedAt":
            from .container import go_time

            return go_time(data.get("Created") or "")
        if name in data:
            return data[name]
        raise KeyError(name)


LS_SPEC = Spec("network ls", "[OPTIONS]", "List networks", [
    FILTER,
    FORMAT,
    ("", "no-trunc", "bool", False, "Do not truncate the output"),
    ("q", "quiet", "bool", False, "Only display network IDs"),
], aliases="dockyard network ls, dockyard network list")


def ls(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(LS_SPEC, argv)
    query: dict[str, Any] = {}
    encoded = encode_filters(list(opts.filter))
    if encoded:
        query["filters"] = encoded
    found = ctx.client.get("/networks", query)
    from ._output import write_rows

    fmt = "{{.ID}}" if opts.quiet else opts.format
    rows = [NetworkRow(n, not opts.no_trunc) for n in found]
    write_rows(fmt, NETWORK_TABLE, rows, NETWORK_HEADERS)
    return 0


CREATE_SPEC = Spec("network create", "[OPTIONS] NETWORK", "Create a network", [
    ("", "attachable", "bool", False, "Enable manual container attachment"),
    ("", "aux-address", "list", [], "Auxiliary IPv4 or IPv6 addresses used by Network driver"),
    ("d", "driver", "str", "bridge", "Driver to manage the Network"),
    ("", "gateway", "list", [], "IPv4 or IPv6 Gateway for the master subnet"),
    ("", "internal", "bool", False, "Restrict external access to the network"),
    ("", "ip-range", "list", [], "Allocate container ip from a sub-range"),
    ("", "ipam-driver", "str", "default", "IP Address Management Driver"),
    ("", "ipam-opt", "list", [], "Set IPAM driver specific options"),
    ("", "ipv4", "bool", True, "Enable or disable IPv4 address assignment"),
    ("", "ipv6", "bool", False, "Enable or disable IPv6 address assignment"),
    ("", "label", "list", [], "Set metadata on a network"),
    ("o", "opt", "list", [], "Set driver specific options"),
    ("", "subnet", "list", [], "Subnet in CIDR format that represents a network segment"),
], 1, 1)


def create(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(CREATE_SPEC, argv)
    if len(opts.gateway) > len(opts.subnet) or len(opts.ip_range) > len(opts.subnet):
        raise CommandFailed("Error response from daemon: every ip-range or gateway must have "
                            "a corresponding subnet", 1)
    config = []
    for index, subnet in enumerate(opts.subnet):
        entry: dict[str, Any] = {"Subnet": subnet}
        if index < len(opts.ip_range):
            entry["IPRange"] = opts.ip_range[index]
        if index < len(opts.gateway):
            entry["Gateway"] = opts.gateway[index]
        config.append(entry)
    if opts.aux_address:
        import ipaddress

        for item in opts.aux_address:
            key, _, value = item.partition("=")
            owner = next((e for e in config if ipaddress.ip_address(value) in
                          ipaddress.ip_network(e["Subnet"], strict=False)), None)
            if owner is None:
                raise CommandFailed(f"Error response from daemon: no matching subnet for aux-"
                                    f"address {value}", 1)
            owner.setdefault("AuxiliaryAddresses", {})[key] = value
    body = {"Name": args[0], "Driver": opts.driver, "Internal": opts.internal,
            "Attachable": opts.attachable, "EnableIPv6": opts.ipv6,
            "IPAM": {"Driver": opts.ipam_driver, "Config": config,
                     "Options": _pairs(opts.ipam_opt)},
            "Options": _pairs(opts.opt), "Labels": _pairs(opts.label)}
    result = ctx.client.post("/networks/create", None, body)
    sys.stdout.write(result["Id"] + "\n")
    return 0


def _pairs(items: list[str]) -> dict[str, str]:
    result = {}
    for item in items:
        key, _, value = item.partition("=")
        result[key] = value
    return result


INSPECT_SPEC = Spec("network inspect", "[OPTIONS] NETWORK [NETWORK...]",
                    "Display detailed information on one or more networks", [
                        ("f", "format", "str", "", "Format output using a custom template"),
                        ("v", "verbose", "bool", False, "Verbose output for diagnostics"),
                    ], 1, None)


def inspect(ctx: Context, argv: list[str]) -> int:
    from .system import inspect_objects

    opts, args = ctx.parse(INSPECT_SPEC, argv)
    return inspect_objects(ctx, args, "network", opts.format, False)


RM_SPEC = Spec("network rm", "NETWORK [NETWORK...]", "Remove one or more networks", [
    ("f", "force", "bool", False, "Do not error if the network does not exist"),
], 1, None, aliases="dockyard network rm, dockyard network remove")


def rm(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(RM_SPEC, argv)
    failed = False
    for name in args:
        try:
            ctx.client.request("DELETE", f"/networks/{quote(name)}")
        except DaemonError as err:
            if opts.force and err.status == 404:
                continue
            sys.stderr.write(f"Error response from daemon: {err.message}\n")
            failed = True
            continue
        sys.stdout.write(name + "\n")
    return 1 if failed else 0


PRUNE_SPEC = Spec("network prune", "[OPTIONS]", "Remove all unused networks", [
    ("", "filter", "list", [], "Provide filter values (e.g. \"until=<timestamp>\")"),
    ("f", "force", "bool", False, "Do not prompt for confirmation"),
])


def prune(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(PRUNE_SPEC, argv)
    if not opts.force and not confirm("WARNING! This will remove all custom networks not "
                                      "used by at least one container."):
        return 0
    query = {}
    encoded = encode_filters(list(opts.filter))
    if encoded:
        query["filters"] = encoded
    result = ctx.client.post("/networks/prune", query)
    deleted = result.get("NetworksDeleted") or []
    if deleted:
        sys.stdout.write("Deleted Networks:\n" + "".join(f"{n}\n" for n in deleted) + "\n")
    return 0


CONNECT_SPEC = Spec("network connect", "[OPTIONS] NETWORK CONTAINER",
                    "Connect a container to a network", [
                        ("", "alias", "list", [], "Add network-scoped alias for the container"),
                        ("", "driver-opt", "list", [], "driver options for the network"),
                        ("", "gw-priority", "int", 0, "Highest gw-priority provides the default "
                                                      "gateway"),
                        ("", "ip", "str", "", "IPv4 address (e.g., \"172.30.100.104\")"),
                        ("", "ip6", "str", "", "IPv6 address (e.g., \"2001:db8::33\")"),
                        ("", "link", "list", [], "Add link to another container"),
                        ("", "link-local-ip", "list", [], "Add a link-local address for the "
                                                         "container"),
                    ], 2, 2)


def connect(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(CONNECT_SPEC, argv)
    ipam = {k: v for k, v in (("IPv4Address", opts.ip), ("IPv6Address", opts.ip6)) if v}
    endpoint = {"IPAMConfig": ipam or None, "Aliases": list(opts.alias) or None,
                "Links": list(opts.link) or None, "DriverOpts": _pairs(opts.driver_opt) or None,
                "GwPriority": opts.gw_priority}
    ctx.client.post(f"/networks/{quote(args[0])}/connect", None,
                    {"Container": args[1], "EndpointConfig": endpoint})
    return 0


DISCONNECT_SPEC = Spec("network disconnect", "[OPTIONS] NETWORK CONTAINER",
                       "Disconnect a container from a network", [
                           ("f", "force", "bool", False, "Force the container to disconnect "
                                                         "from a network"),
                       ], 2, 2)


def disconnect(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(DISCONNECT_SPEC, argv)
    ctx.client.post(f"/networks/{quote(args[0])}/disconnect", None,
                    {"Container": args[1], "Force": opts.force})
    return 0
