"""`dockyard volume`: create, ls, inspect, rm, prune, as `docker volume` does them."""

from __future__ import annotations

import sys

from ..units import human_size
from ._args import Spec, UsageError
from ._client import DaemonError, quote
from ._context import CommandFailed, Context
from .container import confirm, encode_filters, for_each

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any

CREATE_SPEC = Spec("volume create", "[OPTIONS] [VOLUME]", "Create a volume", [
    ("d", "driver", "str", "local", "Specify volume driver name"),
    ("", "label", "list", [], "Set metadata for a volume"),
    ("", "name", "str", "", "Specify volume name"),
    ("o", "opt", "list", [], "Set driver specific options"),
], 0, 1)


def _key_values(items: list[str], flag: str) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if flag == "opt" and not sep:
            raise UsageError(f"invalid argument \"{item}\" for \"-o, --opt\" flag: "
                             "invalid key value pair format in driver options")
        result[key] = value
    return result


def create(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(CREATE_SPEC, argv)
    if args and opts.name and args[0] != opts.name:
        raise CommandFailed("conflicting options: cannot specify a volume-name through both "
                            "--name and as a positional arg", 1)
    name = args[0] if args else opts.name
    body = {"Name": name, "Driver": opts.driver,
            "DriverOpts": _key_values(opts.opt, "opt"),
            "Labels": _key_values(opts.label, "label")}
    volume = ctx.client.post("/volumes/create", None, body)
    sys.stdout.write(f"{volume['Name']}\n")
    return 0


LS_SPEC = Spec("volume ls", "[OPTIONS]", "List volumes", [
    ("", "cluster", "bool", False, "Display only cluster volumes, and use cluster volume "
                                   "list formatting"),
    ("f", "filter", "list", [], "Provide filter values (e.g. \"dangling=true\")"),
    ("", "format", "str", "", "Format output using a custom template"),
    ("q", "quiet", "bool", False, "Only display volume names"),
], aliases="dockyard volume ls, dockyard volume list")
LS_HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE",
              "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "Links": "LINKS",
              "Size": "SIZE", "Group": "GROUP", "Availability": "AVAILABILITY",
              "Status": "STATUS"}
LS_TABLE = "table {{.Driver}}\t{{.Name}}"


def row(volume: dict[str, Any]) -> dict[str, Any]:
    """The fields docker's volume formatter offers."""
    labels = volume.get("Labels") or {}
    usage = volume.get("UsageData") or {}
    return {"Name": volume["Name"], "Driver": volume["Driver"], "Scope": volume["Scope"],
            "Mountpoint": volume["Mountpoint"],
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "Links": str(usage["RefCount"]) if usage.get("RefCount", -1) >= 0 else "N/A",
            "Size": human_size(usage["Size"]) if usage.get("Size", -1) >= 0 else "N/A",
            "Group": "N/A", "Availability": "N/A", "Status": "N/A"}


def ls(ctx: Context, argv: list[str]) -> int:
    from ._output import write_rows

    opts, _ = ctx.parse(LS_SPEC, argv)
    filters = encode_filters(opts.filter)
    data = ctx.client.get("/volumes", {"filters": filters} if filters else None)
    volumes = sorted(data.get("Volumes") or [], key=lambda v: v["Name"])
    fmt = opts.format
    if opts.quiet:
        fmt = "{{.Name}}"
    write_rows(fmt, LS_TABLE, [row(v) for v in volumes], LS_HEADERS)
    return 0


INSPECT_SPEC = Spec("volume inspect", "[OPTIONS] VOLUME [VOLUME...]",
                    "Display detailed information on one or more volumes", [
                        ("f", "format", "str", "", "Format output using a custom template"),
                    ], 1, None)


def inspect(ctx: Context, argv: list[str]) -> int:
    import json

    opts, args = ctx.parse(INSPECT_SPEC, argv)
    found, errors = [], []
    for name in args:
        try:
            found.append(ctx.client.get(f"/volumes/{quote(name, '')}"))
        except DaemonError as err:
            errors.append(f"Error response from daemon: {err.message}")
    if opts.format:
        from ._output import render_single

        for item in found:
            sys.stdout.write(render_single(opts.format, item) + "\n")
    else:
        sys.stdout.write(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    if errors:
        raise CommandFailed("\n".join(errors), 1)
    return 0


RM_SPEC = Spec("volume rm", "[OPTIONS] VOLUME [VOLUME...]", "Remove one or more volumes", [
    ("f", "force", "bool", False, "Force the removal of one or more volumes"),
], 1, None, aliases="dockyard volume rm, dockyard volume remove")


def rm(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(RM_SPEC, argv)
    query = {"force": "1"} if opts.force else None
    return for_each(args, lambda name: ctx.client.delete(f"/volumes/{quote(name, '')}",
                                                         query))


PRUNE_SPEC = Spec("volume prune", "[OPTIONS]", "Remove unused local volumes", [
    ("a", "all", "bool", False, "Remove all unused volumes, not just anonymous ones"),
    ("", "filter", "list", [], "Provide filter values (e.g. \"label=<label>\")"),
    ("f", "force", "bool", False, "Do not prompt for confirmation"),
])


def prune(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(PRUNE_SPEC, argv)
    items = list(opts.filter)
    if opts.all:
        if any(item.startswith("all=") for item in items):
            raise CommandFailed("conflicting options: cannot specify both --all and "
                                "--filter all=1", 1)
        items.append("all=true")
    what = "all local volumes" if opts.all else "anonymous local volumes"
    if not opts.force and not confirm(f"WARNING! This will remove {what} not used by at "
                                      "least one container."):
        return 0
    filters = encode_filters(items)
    result = ctx.client.post("/volumes/prune", {"filters": filters} if filters else None)
    deleted = result.get("VolumesDeleted") or []
    out = []
    if deleted:
        out.append("Deleted Volumes:\n" + "".join(f"{d}\n" for d in deleted) + "\n")
    out.append(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")
    sys.stdout.write("".join(out))
    return 0
