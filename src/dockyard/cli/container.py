"""Container commands: ps, stats, create and run; also the helpers the other command
modules share (ids, filters, per-container loops, confirmation prompts).

Only this module is imported by `dockyard ps`, so it stays light; lifecycle commands are in
container_control, the streams and files commands in container_io."""

from __future__ import annotations

import os
import sys
import time

from ..gostrings import go_quote
from ..units import human_size, since
from ._args import Options, Spec, UsageError
from ._client import Client, DaemonError, quote
from ._context import CommandFailed, Context

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any

    from ._args import Flag

FILTER: Flag = ("f", "filter", "list", [], "Filter output based on conditions provided")
FORMAT: Flag = ("", "format", "str", "", "Format output using a custom template")


def truncate_id(identifier: str) -> str:
    if ":" in identifier:
        identifier = identifier.split(":", 1)[1]
    return identifier[:12]


def encode_filters(items: list[str]) -> str | None:
    """--filter k=v ... as the API's filters JSON ({"k": {"v": true}}), None when empty."""
    if not items:
        return None
    from ._jsonlite import dumps

    filters: dict[str, dict[str, bool]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError("bad format of filter (expected name=value)")
        filters.setdefault(key.strip().lower(), {})[value] = True
    return dumps(filters)


def for_each(names: list[str], action: Any, echo: bool = True) -> int:
    """Runs action(name) for each; prints the name (docker echoes it) or the error."""
    failed = False
    for name in names:
        try:
            action(name)
        except DaemonError as err:
            sys.stderr.write(f"Error response from daemon: {err.message}\n")
            failed = True
            continue
        if echo:
            sys.stdout.write(f"{name}\n")
    sys.stdout.flush()
    return 1 if failed else 0


def path_id(name: str) -> str:
    return quote(name, safe=":@")


def split_reference(reference: str) -> tuple[str, str]:
    """repository and tag of NAME[:TAG] (a registry's :port is not a tag)."""
    name, at, digest = reference.partition("@")
    if at:
        return name, ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, ""


def confirm(message: str) -> bool:
    sys.stdout.write(f"{message}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


# -- ps ---------------------------------------------------------------------------------------

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "State": "STATE", "Status": "STATUS", "Size": "SIZE", "Names": "NAMES",
              "Labels": "LABELS", "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES",
              "Networks": "NETWORKS", "Platform": "PLATFORM"}
PS_TABLE = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t" \
           "{{.Ports}}\t{{.Names}}"


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def displayable_ports(ports: list[dict[str, Any]]) -> str:
    """docker's DisplayablePorts: "0.0.0.0:8080->80/tcp, 443/tcp", ranges grouped."""
    def order(p: dict[str, Any]) -> tuple[Any, ...]:
        return (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0),
                p.get("Type", ""))

    groups: dict[str, list[int]] = {}
    keys: list[str] = []
    result: list[str] = []
    mappings: list[str] = []

    def form(key: str, first: int, last: int) -> str:
        ip, _, kind = key.rpartition("/")
        group = str(first) if first == last else f"{first}-{last}"
        if ip:
            host = f"[{ip}]" if ":" in ip else ip
            group = f"{host}:{group}->{group}"
        return f"{group}/{kind}"

    for port in sorted(ports, key=order):
        current = port.get("PrivatePort", 0)
        key = port.get("Type", "tcp")
        ip = port.get("IP", "")
        if ip:
            public = port.get("PublicPort", 0)
            if public != current:
                host = f"[{ip}]" if ":" in ip else ip
                mappings.append(f"{host}:{public}->{current}/{port.get('Type', 'tcp')}")
                continue
            key = f"{ip}/{key}"
        group = groups.get(key)
        if group is None:
            groups[key] = [current, current]
            keys.append(key)
            continue
        if current == group[1] + 1:
            group[1] = current
            continue
        result.append(form(key, group[0], group[1]))
        groups[key] = [current, current]
    result += [form(key, *groups[key]) for key in keys]
    return ", ".join(result + mappings)


class ContainerRow:
    """One `ps` line for templates (docker's formatter.ContainerContext)."""

    FIELDS = ("Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts",
              "Names", "Networks", "Platform", "Ports", "RunningFor", "Size", "State",
              "Status")

    def __init__(self, data: dict[str, Any], trunc: bool) -> None:
        self.data = data
        self.trunc = trunc

    def field(self, name: str) -> Any:
        method = getattr(self, f"_{name}", None)
        if method is None or name not in self.FIELDS:
            raise _template_field_error(name, "*formatter.ContainerContext")
        return method()

    def call(self, name: str, *args: Any) -> Any:
        if name == "Label":
            return (self.data.get("Labels") or {}).get(args[0], "")
        raise _template_field_error(name, "*formatter.ContainerContext")

    def to_json(self) -> dict[str, Any]:
        return {name: self.field(name) for name in self.FIELDS}

    def _ID(self) -> str:
        return truncate_id(self.data["Id"]) if self.trunc else self.data["Id"]

    def _Names(self) -> str:
        names = [n[1:] if n.startswith("/") else n for n in self.data.get("Names") or []]
        if self.trunc:
            for name in names:
                if "/" not in name:
                    return name
        return ",".join(names)

    def _Image(self) -> str:
        image = self.data.get("Image", "")
        if not image:
            return "<no image>"
        if self.trunc:
            if image.startswith("sha256:") or (len(image) == 64 and "/" not in image):
                return truncate_id(image)
            name, at, _ = image.partition("@")
            if at and name:
                return name
        return image

    def _Command(self) -> str:
        command = self.data.get("Command", "")
        return go_quote(ellipsis(command, 20) if self.trunc else command)

    def _CreatedAt(self) -> str:
        return go_time(self.data.get("Created", 0))

    def _RunningFor(self) -> str:
        return since(self.data.get("Created", 0))

    def _Ports(self) -> str:
        return displayable_ports(self.data.get("Ports") or [])

    def _State(self) -> str:
        return self.data.get("State", "")

    def _Status(self) -> str:
        return self.data.get("Status", "")

    def _Size(self) -> str:
        if self.data.get("SizeRw") is None and self.data.get("SizeRootFs") is None:
            return "0B"
        rw = human_size(self.data.get("SizeRw") or 0)
        root = self.data.get("SizeRootFs") or 0
        return f"{rw} (virtual {human_size(root)})" if root > 0 else rw

    def _Labels(self) -> str:
        labels = self.data.get("Labels") or {}
        return ",".join(f"{k}={v}" for k, v in labels.items())

    def _Mounts(self) -> str:
        names = []
        for mount in self.data.get("Mounts") or []:
            name = mount.get("Name") or mount.get("Source", "")
            if self.trunc:
                name = ellipsis(name, 15)
            names.append(name)
        return ",".join(names)

    def _LocalVolumes(self) -> str:
        return str(sum(1 for m in self.data.get("Mounts") or []
                       if m.get("Driver") == "local"))

    def _Networks(self) -> str:
        networks = (self.data.get("NetworkSettings") or {}).get("Networks") or {}
        return ",".join(sorted(networks))

    def _Platform(self) -> Any:
        return None


def _template_field_error(name: str, kind: str) -> Exception:
    from ._template import TemplateError

    return TemplateError(f"at <.{name}>: can't evaluate field {name} in type {kind}")


def go_time(timestamp: float) -> str:
    """Go's time.Time.String() of a Unix time, in local time: 2024-01-02 15:04:05 +0000 UTC."""
    local = time.localtime(timestamp)
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", local) + (local.tm_zone or "")


PS_SPEC = Spec("ps", "[OPTIONS]", "List containers", [
    ("a", "all", "bool", False, "Show all containers (default shows just running)"),
    FILTER,
    FORMAT,
    ("n", "last", "int", -1, "Show n last created containers (includes all states)"),
    ("l", "latest", "bool", False, "Show the latest created container (includes all "
                                   "states)"),
    ("", "no-trunc", "bool", False, "Don't truncate output"),
    ("q", "quiet", "bool", False, "Only display container IDs"),
    ("s", "size", "bool", False, "Display total file sizes"),
], aliases="dockyard container ls, dockyard container list, dockyard container ps, "
           "dockyard ps")


def ps(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(PS_SPEC, argv)
    fmt = opts.format
    want_size = opts.size or ".Size" in fmt or "json ." in fmt.replace("{{json .}}", "json .")
    query: dict[str, Any] = {}
    if opts.all:
        query["all"] = "1"
    limit = 1 if opts.latest else opts.last
    if limit > 0:
        query["limit"] = str(limit)
    if want_size and not opts.quiet:
        query["size"] = "1"
    filters = encode_filters(opts.filter)
    if filters:
        query["filters"] = filters
    containers = ctx.client.get("/containers/json", query)
    trunc = not opts.no_trunc
    out = sys.stdout
    if opts.quiet and not fmt:
        out.write("".join(f"{truncate_id(c['Id']) if trunc else c['Id']}\n"
                          for c in containers))
        return 0
    from ._output import write_rows

    default = PS_TABLE + ("\t{{.Size}}" if opts.size else "")
    if opts.quiet:
        fmt = "{{.ID}}"
    rows = [ContainerRow(c, trunc) for c in containers]
    write_rows(fmt, default, rows, PS_HEADERS)
    return 0


# -- stats ------------------------------------------------------------------------------------

STATS_HEADERS = {"ID": "CONTAINER ID", "Name": "NAME", "Container": "CONTAINER",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}
STATS_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t" \
              "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"

STATS_SPEC = Spec("stats", "[OPTIONS] [CONTAINER...]",
                  "Display a live stream of container(s) resource usage statistics", [
                      ("a", "all", "bool", False, "Show all containers (default shows just "
                                                  "running)"),
                      FORMAT,
                      ("", "no-stream", "bool", False, "Disable streaming stats and only "
                                                       "pull the first result"),
                      ("", "no-trunc", "bool", False, "Do not truncate output"),
                  ], 0, None)


def stats_row(container: str, data: dict[str, Any], trunc: bool = True) -> dict[str, str]:
    """One stats line from /containers/{id}/stats JSON (docker's calculations)."""
    from ..units import bytes_size

    cpu = data.get("cpu_stats") or {}
    pre = data.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    system_delta = (cpu.get("system_cpu_usage") or 0) - (pre.get("system_cpu_usage") or 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage")
                                           or []) or 1
    cpu_percent = cpu_delta / system_delta * online * 100 \
        if system_delta > 0 and cpu_delta > 0 else 0.0
    memory = data.get("memory_stats") or {}
    usage = memory.get("usage", 0)
    detail = memory.get("stats") or {}
    cache = detail.get("total_inactive_file", detail.get("inactive_file", 0))
    if cache < usage:
        usage -= cache
    limit = memory.get("limit", 0)
    mem_percent = usage / limit * 100 if limit else 0.0
    rx = tx = 0
    for net in (data.get("networks") or {}).values():
        rx += net.get("rx_bytes", 0)
        tx += net.get("tx_bytes", 0)
    read = write = 0
    for entry in (data.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
        op = entry.get("op", "").lower()
        if op == "read":
            read += entry.get("value", 0)
        elif op == "write":
            write += entry.get("value", 0)
    identifier = data.get("id", container)
    name = data.get("name", "").lstrip("/")
    return {"ID": truncate_id(identifier) if trunc else identifier, "Name": name or "--",
            "Container": container, "CPUPerc": f"{cpu_percent:.2f}%",
            "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
            "MemPerc": f"{mem_percent:.2f}%",
            "NetIO": f"{human_size(rx)} / {human_size(tx)}",
            "BlockIO": f"{human_size(read)} / {human_size(write)}",
            "PIDs": str((data.get("pids_stats") or {}).get("current", 0))}


def stats(ctx: Context, argv: list[str]) -> int:
    from ._output import write_rows

    opts, args = ctx.parse(STATS_SPEC, argv)
    client = ctx.client
    trunc = not opts.no_trunc

    def collect() -> list[dict[str, str]]:
        names = args
        if not names:
            query = {"all": "1"} if opts.all else None
            names = [c["Id"] for c in client.get("/containers/json", query)]
        rows = []
        for name in names:
            data = client.get(f"/containers/{path_id(name)}/stats", {"stream": "0"})
            rows.append(stats_row(name, data, trunc))
        return rows

    if opts.no_stream:
        write_rows(opts.format, STATS_TABLE, collect(), STATS_HEADERS)
        return 0
    while True:
        rows = collect()
        sys.stdout.write("\033[2J\033[H")
        write_rows(opts.format, STATS_TABLE, rows, STATS_HEADERS)
        sys.stdout.flush()
        time.sleep(0.5)


# -- create and run ---------------------------------------------------------------------------

def _run_spec(run: bool) -> Spec:
    from ._runopts import CREATE_FLAGS, RUN_FLAGS

    if run:
        return Spec("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]",
                    "Create and run a new container from an image", RUN_FLAGS, 1, None,
                    interspersed=False, aliases="dockyard container run, dockyard run")
    return Spec("create", "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container",
                CREATE_FLAGS, 1, None, interspersed=False,
                aliases="dockyard container create, dockyard create")


def _run_failure(ctx: Context, message: str) -> CommandFailed:
    """docker's run/create error: 125, or 126/127 when the command could not be started."""
    code = 125
    if "executable file not found" in message or "no such file or directory" in message:
        code = 127
    elif "permission denied" in message or "is a directory" in message:
        code = 126
    return CommandFailed(f"dockyard: {message}\n\nRun 'dockyard {ctx.name} --help' for more "
                         "information", code)


def _create_container(ctx: Context, opts: Options, image: str, command: list[str],
                      detach: bool) -> str:
    from ._runopts import build_create_body

    size = (0, 0)
    if opts.tty:
        from ._session import terminal_size

        size = terminal_size() or (0, 0)
    body, query = build_create_body(opts, image, command, detach, size)
    client = ctx.client
    pull = opts.pull
    if pull not in ("always", "missing", "never"):
        raise UsageError(f'invalid pull option: \'{pull}\': must be one of "always", '
                         '"missing" or "never"')
    if pull == "always":
        _pull_for_create(ctx, image, opts)
    try:
        created = client.post("/containers/create", query, body)
    except DaemonError as err:
        if err.status != 404 or pull != "missing" or "No such image" not in err.message:
            raise
        sys.stderr.write(f"Unable to find image '{_full_reference(image)}' locally\n")
        _pull_for_create(ctx, image, opts)
        created = client.post("/containers/create", query, body)
    for warning in created.get("Warnings") or []:
        sys.stderr.write(f"WARNING: {warning}\n")
    container_id: str = created["Id"]
    if opts.cidfile:
        if os.path.exists(opts.cidfile):
            raise CommandFailed(f"container ID file found, make sure the other container "
                                f"isn't running or delete {opts.cidfile}", 125)
        with open(opts.cidfile, "w") as f:
            f.write(container_id)
    return container_id


def _full_reference(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    if ":" not in last and "@" not in last:
        image += ":latest"
    return image


def _pull_for_create(ctx: Context, image: str, opts: Options) -> None:
    from .image import pull_image

    pull_image(ctx, image, opts.platform, quiet=opts.quiet, out=sys.stderr)


def create(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(_run_spec(False), argv)
    try:
        container_id = _create_container(ctx, opts, args[0], args[1:], False)
    except DaemonError as err:
        raise _run_failure(ctx, f"Error response from daemon: {err.message}") from None
    sys.stdout.write(container_id + "\n")
    return 0


def run(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(_run_spec(True), argv)
    if not opts.detach and opts.tty and opts.interactive and not os.isatty(0):
        raise CommandFailed("the input device is not a TTY", 1)
    client = ctx.client
    try:
        container_id = _create_container(ctx, opts, args[0], args[1:], opts.detach)
    except DaemonError as err:
        raise _run_failure(ctx, f"Error response from daemon: {err.message}") from None
    if opts.detach:
        # As docker: a waiter first, so that an --rm container that fails to start is
        # removed before the error is reported.
        waiter = client.send("POST", f"/containers/{container_id}/wait",
                             {"condition": "removed" if opts.rm else "next-exit"})
        waiter.settle(0.5)
        try:
            client.request("POST", f"/containers/{container_id}/start").read()
        except DaemonError as err:
            if opts.rm:
                _read_exit(waiter)
            raise _run_failure(ctx, f"Error response from daemon: {err.message}") from None
        finally:
            waiter.close()
        sys.stdout.write(container_id + "\n")
        return 0
    attach = [a.lower() for a in opts.attach]
    streams = {"stdin": opts.interactive or "stdin" in attach,
               "stdout": not attach or "stdout" in attach,
               "stderr": not attach or "stderr" in attach}
    return attached_session(ctx, container_id, streams, opts.tty,
                             auto_remove=opts.rm, sig_proxy=opts.sig_proxy and not opts.tty,
                             start=True)


def attached_session(ctx: Context, container_id: str, streams: dict[str, bool], tty: bool,
                      auto_remove: bool, sig_proxy: bool, start: bool,
                      detach_keys: str = "") -> int:
    """attach (hijacked), wait for the next exit, start, copy the streams, exit code."""
    from ._session import RawTerminal, copy_output, monitor_size, proxy_signals, start_stdin_pump

    client = ctx.client
    query: dict[str, Any] = {"stream": "1"}
    for name in ("stdin", "stdout", "stderr"):
        if streams[name]:
            query[name] = "1"
    if detach_keys:
        query["detachKeys"] = detach_keys
    sock = None
    leftover = b""
    if any(streams.values()):
        sock, leftover = client.hijack(f"/containers/{container_id}/attach", query)
    waiter = None
    if start:
        waiter = client.send("POST", f"/containers/{container_id}/wait",
                             {"condition": "removed" if auto_remove else "next-exit"})
        waiter.settle(0.5)
    with RawTerminal(tty and streams["stdin"]):
        if start:
            try:
                client.request("POST", f"/containers/{container_id}/start").read()
            except DaemonError as err:
                if sock is not None:
                    sock.close()
                if auto_remove and waiter is not None:
                    _read_exit(waiter)
                raise _run_failure(ctx, f"Error response from daemon: {err.message}") \
                    from None
        if tty and os.isatty(1):
            monitor_size(lambda h, w: client.request(
                "POST", f"/containers/{container_id}/resize", {"h": h, "w": w}).read())
        if sig_proxy:
            proxy_signals(lambda sig: client.request(
                "POST", f"/containers/{container_id}/kill", {"signal": sig}).read())
        if sock is not None:
            if streams["stdin"]:
                start_stdin_pump(sock)
            copy_output(sock, leftover, tty)
            sock.close()
    if waiter is None:
        return _exit_code_after_attach(client, container_id)
    return _read_exit(waiter)


def _read_exit(waiter: Any) -> int:
    """The container's exit status from a /wait reply."""
    try:
        result = waiter.response().json()
    except DaemonError as err:
        sys.stderr.write(f"Error response from daemon: {err.message}\n")
        return 125
    error = (result.get("Error") or {}).get("Message") if isinstance(result, dict) else None
    if error:
        sys.stderr.write(f"Error: {error}\n")
    return int(result.get("StatusCode", 0))


def _exit_code_after_attach(client: Client, container_id: str) -> int:
    try:
        state = client.get(f"/containers/{container_id}/json")["State"]
    except DaemonError:
        return 0
    if state.get("Running"):
        return 0
    return int(state.get("ExitCode", 0))
