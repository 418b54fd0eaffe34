"""System commands: version, info, system df, events, and inspect of any object."""

from __future__ import annotations

import platform
import sys
import time

from ..units import bytes_size, human_size
from ._args import Spec
from ._client import CLIENT_MAX_API, DaemonError, quote
from ._context import CommandFailed, Context

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any

VERSION_SPEC = Spec("version", "[OPTIONS]", "Show the Dockyard version information", [
    ("f", "format", "str", "", "Format output using a custom template"),
])

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def _client_info(ctx: Context) -> dict[str, Any]:
    from .. import __version__

    machine = platform.machine()
    return {"Platform": {"Name": "Dockyard"}, "Version": __version__,
            "ApiVersion": ctx.client.version or CLIENT_MAX_API,
            "DefaultAPIVersion": CLIENT_MAX_API, "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}", "Os": "linux",
            "Arch": _ARCH.get(machine, machine), "BuildTime": "",
            "Context": "default"}


def version(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(VERSION_SPEC, argv)
    server: dict[str, Any] | None = None
    error = None
    try:
        ctx.client.negotiate()
        server = ctx.client.get("/version")
    except Exception as err:   # docker prints the client part whatever the daemon says
        error = err
    client = _client_info(ctx)
    if opts.format:
        from ._output import render_single

        sys.stdout.write(render_single(opts.format, {"Client": client, "Server": server})
                         + "\n")
    else:
        api = client["ApiVersion"]
        if api != CLIENT_MAX_API:
            api = f"{api} (downgraded from {CLIENT_MAX_API})"
        lines = ["Client:", f" Version:           {client['Version']}",
                 f" API version:       {api}",
                 f" Python version:    {platform.python_version()}",
                 f" OS/Arch:           {client['Os']}/{client['Arch']}",
                 f" Context:           {client['Context']}"]
        if server is not None:
            lines += ["", "Server:"]
            for component in server.get("Components") or [
                    {"Name": "Engine", "Version": server.get("Version", ""),
                     "Details": {"ApiVersion": server.get("ApiVersion", ""),
                                 "MinAPIVersion": server.get("MinAPIVersion", ""),
                                 "GitCommit": server.get("GitCommit", ""),
                                 "GoVersion": server.get("GoVersion", ""),
                                 "Os": server.get("Os", ""), "Arch": server.get("Arch", ""),
                                 "BuildTime": server.get("BuildTime", ""),
                                 "Experimental": str(server.get("Experimental", False))}}]:
                details = component.get("Details") or {}
                lines.append(f" {component['Name']}:")
                if component["Name"] == "Engine":
                    lines += [
                        f"  Version:          {component.get('Version', '')}",
                        f"  API version:      {details.get('ApiVersion', '')} (minimum "
                        f"version {details.get('MinAPIVersion', '')})",
                        f"  Go version:       {details.get('GoVersion', '')}",
                        f"  Git commit:       {details.get('GitCommit', '')}",
                        f"  Built:            {details.get('BuildTime', '')}",
                        f"  OS/Arch:          {details.get('Os', '')}/"
                        f"{details.get('Arch', '')}",
                        f"  Experimental:     {details.get('Experimental', '')}"]
                else:
                    lines.append(f"  Version:          {component.get('Version', '')}")
                    for key, value in details.items():
                        lines.append(f"  {(key + ':').ljust(18)}{value}")
        sys.stdout.write("\n".join(lines) + "\n")
    if error is not None:
        raise CommandFailed(str(getattr(error, "message", error)), 1)
    return 0


INFO_SPEC = Spec("info", "[OPTIONS]", "Display system-wide information", [
    ("f", "format", "str", "", "Format output using a custom template"),
])


def info(ctx: Context, argv: list[str]) -> int:
    from .. import __version__

    opts, _ = ctx.parse(INFO_SPEC, argv)
    data = ctx.client.get("/info")
    if opts.format:
        from ._output import render_single

        client = {"Version": __version__, "Context": "default", "Debug": False}
        sys.stdout.write(render_single(opts.format, {**data, "ClientInfo": client,
                                                     "ServerErrors": None}) + "\n")
        return 0
    lines = ["Client:", f" Version:    {__version__}", " Context:    default",
             " Debug Mode: false", "", "Server:",
             f" Containers: {data.get('Containers', 0)}",
             f"  Running: {data.get('ContainersRunning', 0)}",
             f"  Paused: {data.get('ContainersPaused', 0)}",
             f"  Stopped: {data.get('ContainersStopped', 0)}",
             f" Images: {data.get('Images', 0)}",
             f" Server Version: {data.get('ServerVersion', '')}",
             f" Storage Driver: {data.get('Driver', '')}"]
    for pair in data.get("DriverStatus") or []:
        lines.append(f"  {pair[0]}: {pair[1]}")
    lines += [f" Logging Driver: {data.get('LoggingDriver', '')}",
              f" Cgroup Driver: {data.get('CgroupDriver', '')}",
              f" Cgroup Version: {data.get('CgroupVersion', '')}", " Plugins:"]
    plugins = data.get("Plugins") or {}
    for kind in ("Volume", "Network", "Authorization", "Log"):
        if plugins.get(kind):
            lines.append(f"  {kind}: {' '.join(plugins[kind])}")
    swarm = (data.get("Swarm") or {}).get("LocalNodeState") or "inactive"
    lines.append(f" Swarm: {swarm}")
    runtimes = data.get("Runtimes") or {}
    if runtimes:
        lines.append(f" Runtimes: {' '.join(sorted(runtimes))}")
    lines.append(f" Default Runtime: {data.get('DefaultRuntime', '')}")
    if data.get("InitBinary"):
        lines.append(f" Init Binary: {data['InitBinary']}")
    for key, label in (("ContainerdCommit", "containerd"), ("RuncCommit", "runc"),
                       ("InitCommit", "init")):
        commit = (data.get(key) or {}).get("ID")
        if commit is not None:
            lines.append(f" {label} version: {commit}")
    security = data.get("SecurityOptions") or []
    if security:
        lines.append(" Security Options:")
        for option in security:
            fields = dict(part.split("=", 1) for part in option.split(",") if "=" in part)
            lines.append(f"  {fields.get('name', option)}")
            for key, value in fields.items():
                if key != "name":
                    lines.append(f"   {key.capitalize()}: {value}")
    lines += [f" Kernel Version: {data.get('KernelVersion', '')}",
              f" Operating System: {data.get('OperatingSystem', '')}",
              f" OSType: {data.get('OSType', '')}",
              f" Architecture: {data.get('Architecture', '')}",
              f" CPUs: {data.get('NCPU', 0)}",
              f" Total Memory: {bytes_size(data.get('MemTotal', 0))}",
              f" Name: {data.get('Name', '')}", f" ID: {data.get('ID', '')}",
              f" Docker Root Dir: {data.get('DockerRootDir', '')}",
              f" Debug Mode: {'true' if data.get('Debug') else 'false'}"]
    for key, label in (("HttpProxy", "HTTP Proxy"), ("HttpsProxy", "HTTPS Proxy"),
                       ("NoProxy", "No Proxy")):
        if data.get(key):
            lines.append(f" {label}: {data[key]}")
    labels = data.get("Labels") or []
    if labels:
        lines.append(" Labels:")
        lines += [f"  {label}" for label in labels]
    lines.append(f" Experimental: {'true' if data.get('ExperimentalBuild') else 'false'}")
    registries = (data.get("RegistryConfig") or {}).get("InsecureRegistryCIDRs") or []
    if registries:
        lines.append(" Insecure Registries:")
        lines += [f"  {cidr}" for cidr in registries]
    mirrors = (data.get("RegistryConfig") or {}).get("Mirrors") or []
    if mirrors:
        lines.append(" Registry Mirrors:")
        lines += [f"  {mirror}" for mirror in mirrors]
    lines.append(f" Live Restore Enabled: {'true' if data.get('LiveRestoreEnabled') else 'false'}")
    sys.stdout.write("\n".join(lines) + "\n\n")
    for warning in data.get("Warnings") or []:
        sys.stderr.write(f"{warning}\n")
    return 0


DF_SPEC = Spec("system df", "[OPTIONS]", "Show docker disk usage", [
    ("", "format", "str", "", "Format output using a custom template"),
    ("v", "verbose", "bool", False, "Show detailed information on space usage"),
])
DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}
DF_TABLE = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def _with_percent(reclaimable: int, total: int) -> str:
    if total > 0:
        return f"{human_size(reclaimable, 4)} ({reclaimable * 100 // total}%)"
    return human_size(reclaimable, 4)


def disk_usage_rows(data: dict[str, Any]) -> list[dict[str, str]]:
    images = data.get("Images") or []
    layers = data.get("LayersSize") or 0
    used = 0
    for image in images:
        if image.get("Containers", 0) > 0 and image.get("Size", -1) != -1 and \
                image.get("SharedSize", -1) != -1:
            used += image["Size"] - image["SharedSize"]
    containers = data.get("Containers") or []
    active_states = ("running", "paused", "restarting")
    c_size = sum(c.get("SizeRw") or 0 for c in containers)
    c_reclaim = sum(c.get("SizeRw") or 0 for c in containers
                    if c.get("State") not in active_states)
    volumes = data.get("Volumes") or []

    def usage(volume: dict[str, Any]) -> dict[str, int]:
        return volume.get("UsageData") or {"Size": -1, "RefCount": -1}

    v_size = sum(max(usage(v).get("Size", 0), 0) for v in volumes)
    v_reclaim = sum(max(usage(v).get("Size", 0), 0) for v in volumes
                    if usage(v).get("RefCount", 0) == 0)
    cache = data.get("BuildCache") or []
    b_size = sum(b.get("Size", 0) for b in cache if not b.get("Shared"))
    b_reclaim = sum(b.get("Size", 0) for b in cache if not b.get("Shared")
                    and not b.get("InUse"))
    return [
        {"Type": "Images", "TotalCount": str(len(images)),
         "Active": str(sum(1 for i in images if i.get("Containers", 0) > 0)),
         "Size": human_size(layers, 4), "Reclaimable": _with_percent(layers - used, layers)},
        {"Type": "Containers", "TotalCount": str(len(containers)),
         "Active": str(sum(1 for c in containers if c.get("State") in active_states)),
         "Size": human_size(c_size, 4), "Reclaimable": _with_percent(c_reclaim, c_size)},
        {"Type": "Local Volumes", "TotalCount": str(len(volumes)),
         "Active": str(sum(1 for v in volumes if usage(v).get("RefCount", 0) > 0)),
         "Size": human_size(v_size, 4), "Reclaimable": _with_percent(v_reclaim, v_size)},
        {"Type": "Build Cache", "TotalCount": str(len(cache)),
         "Active": str(sum(1 for b in cache if b.get("InUse"))),
         "Size": human_size(b_size, 4), "Reclaimable": human_size(b_reclaim, 4)},
    ]


def _verbose_df(data: dict[str, Any]) -> None:
    """docker system df -v: a table per kind of object."""
    from ._output import write_rows
    from .container import ContainerRow
    from .image import IMAGE_HEADERS, image_rows
    from .volume import row

    out = sys.stdout
    out.write("Images space usage:\n\n")
    write_rows(None, "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
               "\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
               image_rows(data.get("Images") or [], False, True), IMAGE_HEADERS)
    out.write("\nContainers space usage:\n\n")
    write_rows(None, "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}"
               "\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
               [ContainerRow(c, True) for c in data.get("Containers") or []],
               {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
                "LocalVolumes": "LOCAL VOLUMES", "Size": "SIZE", "RunningFor": "CREATED",
                "Status": "STATUS", "Names": "NAMES"})
    out.write("\nLocal Volumes space usage:\n\n")
    write_rows(None, "table {{.Name}}\t{{.Links}}\t{{.Size}}",
               [row(v) for v in data.get("Volumes") or []],
               {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"})
    cache = data.get("BuildCache") or []
    out.write(f"\nBuild cache usage: {human_size(sum(b.get('Size', 0) for b in cache))}\n\n")
    write_rows(None, "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}"
               "\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}", [],
               {"ID": "CACHE ID", "CacheType": "CACHE TYPE", "Size": "SIZE",
                "CreatedSince": "CREATED", "LastUsedSince": "LAST USED",
                "UsageCount": "USAGE", "Shared": "SHARED"})


def df(ctx: Context, argv: list[str]) -> int:
    from ._output import write_rows

    opts, _ = ctx.parse(DF_SPEC, argv)
    data = ctx.client.get("/system/df")
    if opts.verbose and not opts.format:
        _verbose_df(data)
        return 0
    write_rows(opts.format, DF_TABLE, disk_usage_rows(data), DF_HEADERS)
    return 0


EVENTS_SPEC = Spec("events", "[OPTIONS]", "Get real time events from the server", [
    ("f", "filter", "list", [], "Filter output based on conditions provided"),
    ("", "format", "str", "", "Format output using a custom template"),
    ("", "since", "str", "", "Show all events created since timestamp"),
    ("", "until", "str", "", "Stream events until this timestamp"),
])


def format_event(event: dict[str, Any]) -> str:
    """docker's default event line: RFC 3339 (nanoseconds, local zone) type action id (attrs)."""
    nano = event.get("timeNano") or int(event.get("time", 0)) * 1_000_000_000
    seconds, fraction = divmod(nano, 1_000_000_000)
    local = time.localtime(seconds)
    offset = time.strftime("%z", local)
    zone = "Z" if offset in ("+0000", "-0000") else f"{offset[:3]}:{offset[3:]}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{fraction:09d}{zone}"
    actor = event.get("Actor") or {}
    line = f"{stamp} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        line += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return line


def events(ctx: Context, argv: list[str]) -> int:
    from .container import encode_filters
    from .container_io import timestamp_arg

    opts, _ = ctx.parse(EVENTS_SPEC, argv)
    query: dict[str, Any] = {}
    if opts.since:
        query["since"] = timestamp_arg(opts.since)
    if opts.until:
        query["until"] = timestamp_arg(opts.until)
    filters = encode_filters(opts.filter)
    if filters:
        query["filters"] = filters
    response = ctx.client.request("GET", "/events", query)
    template = None
    if opts.format:
        from ._output import compile_template

        text = "{{json .}}" if opts.format == "json" else opts.format
        template = compile_template(text.replace("\\t", "\t").replace("\\n", "\n"))
    for event in response.iter_json():
        line = template.render(event) if template is not None else format_event(event)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0


INSPECT_SPEC = Spec("inspect", "[OPTIONS] NAME|ID [NAME|ID...]",
                    "Return low-level information on Dockyard objects", [
                        ("f", "format", "str", "", "Format output using a custom template"),
                        ("s", "size", "bool", False, "Display total file sizes if the type is "
                                                     "container"),
                        ("", "type", "str", "", "Only inspect objects of the given type"),
                    ], 1, None)


def inspect(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(INSPECT_SPEC, argv)
    kind = opts.type
    if kind not in ("", "container", "image", "network", "volume"):
        raise CommandFailed(f'"{kind}" is not a valid value for --type', 1)
    return inspect_objects(ctx, args, kind, opts.format, opts.size)


def _fetch(ctx: Context, name: str, kind: str, size: bool) -> Any:
    client = ctx.client
    quoted = quote(name, ":@/")
    kinds = [kind] if kind else ["container", "image", "network", "volume"]
    for each in kinds:
        path = {"container": f"/containers/{quoted}/json", "image": f"/images/{quoted}/json",
                "network": f"/networks/{quoted}", "volume": f"/volumes/{quoted}"}[each]
        try:
            return client.get(path, {"size": "1"} if size and each == "container" else None)
        except DaemonError as err:
            if err.status != 404:
                raise
    what = {"": "object", "container": "container", "image": "image", "network": "network",
            "volume": "volume"}[kind]
    raise LookupError(f"No such {what}: {name}")


def inspect_objects(ctx: Context, names: list[str], kind: str, fmt: str, size: bool) -> int:
    found = []
    errors = []
    for name in names:
        try:
            found.append(_fetch(ctx, name, kind, size))
        except LookupError as err:
            errors.append(str(err))
    if fmt:
        from ._output import render_single

        for item in found:
            sys.stdout.write(render_single(fmt, item) + "\n")
    else:
        import json

        sys.stdout.write(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    if errors:
        raise CommandFailed("\n".join(f"Error: {e}" for e in errors), 1)
    return 0
