"""Container commands: ps, create, run, start, stop, kill, restart, pause, unpause, rm,
wait, rename, update, logs, attach, exec, top, stats, port, cp, diff, export, commit,
container inspect and container prune."""

from __future__ import annotations

import os
import sys
import time

from ..units import human_size, since
from ._args import Options, Spec, UsageError
from ._client import Client, DaemonError, quote
from ._context import CommandFailed, Context
from ._template import go_quote

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
    return _attached_session(ctx, container_id, streams, opts.tty,
                             auto_remove=opts.rm, sig_proxy=opts.sig_proxy and not opts.tty,
                             start=True)


def _attached_session(ctx: Context, container_id: str, streams: dict[str, bool], tty: bool,
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


# -- start, stop, kill, restart, pause, unpause, rm, wait, rename -----------------------------

START_SPEC = Spec("start", "[OPTIONS] CONTAINER [CONTAINER...]",
                  "Start one or more stopped containers", [
                      ("a", "attach", "bool", False, "Attach STDOUT/STDERR and forward "
                                                      "signals"),
                      ("", "detach-keys", "str", "", "Override the key sequence for "
                                                      "detaching a container"),
                      ("i", "interactive", "bool", False, "Attach container's STDIN"),
                  ], 1, None)


def start(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(START_SPEC, argv)
    client = ctx.client
    if opts.attach or opts.interactive:
        if len(args) > 1:
            raise CommandFailed("you cannot start and attach multiple containers at once", 1)
        info = client.get(f"/containers/{path_id(args[0])}/json")
        tty = bool(info["Config"].get("Tty"))
        streams = {"stdin": bool(opts.interactive and info["Config"].get("OpenStdin")),
                   "stdout": True, "stderr": True}
        return _attached_session(ctx, info["Id"], streams, tty, auto_remove=False,
                                 sig_proxy=not tty, start=True,
                                 detach_keys=opts.detach_keys)
    return for_each(args, lambda name: client.request(
        "POST", f"/containers/{path_id(name)}/start").read())


def _stop_spec(name: str, summary: str) -> Spec:
    return Spec(name, "[OPTIONS] CONTAINER [CONTAINER...]", summary, [
        ("s", "signal", "str", "", "Signal to send to the container"),
        ("t", "time", "int", 0, "Seconds to wait before killing the container"),
    ], 1, None)


STOP_SPEC = _stop_spec("stop", "Stop one or more running containers")
RESTART_SPEC = _stop_spec("restart", "Restart one or more containers")


def _stop_query(opts: Options) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if opts.signal:
        query["signal"] = opts.signal
    if "time" in opts.given:
        query["t"] = str(opts.time)
    return query


def stop(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(STOP_SPEC, argv)
    query = _stop_query(opts)
    return for_each(args, lambda name: ctx.client.request(
        "POST", f"/containers/{path_id(name)}/stop", query).read())


def restart(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(RESTART_SPEC, argv)
    query = _stop_query(opts)
    return for_each(args, lambda name: ctx.client.request(
        "POST", f"/containers/{path_id(name)}/restart", query).read())


KILL_SPEC = Spec("kill", "[OPTIONS] CONTAINER [CONTAINER...]",
                 "Kill one or more running containers", [
                     ("s", "signal", "str", "", "Signal to send to the container"),
                 ], 1, None)


def kill(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(KILL_SPEC, argv)
    query = {"signal": opts.signal} if opts.signal else None
    return for_each(args, lambda name: ctx.client.request(
        "POST", f"/containers/{path_id(name)}/kill", query).read())


PAUSE_SPEC = Spec("pause", "CONTAINER [CONTAINER...]",
                  "Pause all processes within one or more containers", [], 1, None)
UNPAUSE_SPEC = Spec("unpause", "CONTAINER [CONTAINER...]",
                    "Unpause all processes within one or more containers", [], 1, None)


def pause(ctx: Context, argv: list[str]) -> int:
    _, args = ctx.parse(PAUSE_SPEC, argv)
    return for_each(args, lambda name: ctx.client.request(
        "POST", f"/containers/{path_id(name)}/pause").read())


def unpause(ctx: Context, argv: list[str]) -> int:
    _, args = ctx.parse(UNPAUSE_SPEC, argv)
    return for_each(args, lambda name: ctx.client.request(
        "POST", f"/containers/{path_id(name)}/unpause").read())


RM_SPEC = Spec("rm", "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", [
    ("f", "force", "bool", False, "Force the removal of a running container (uses SIGKILL)"),
    ("l", "link", "bool", False, "Remove the specified link"),
    ("v", "volumes", "bool", False, "Remove anonymous volumes associated with the container"),
], 1, None, aliases="dockyard container rm, dockyard container remove, dockyard rm")


def rm(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(RM_SPEC, argv)
    query = {"force": opts.force or None, "v": opts.volumes or None, "link": opts.link or None}
    client = ctx.client

    failed = False
    for name in args:
        name = name.strip("/")
        try:
            if not name:
                raise DaemonError(400, "Container name cannot be empty")
            client.delete(f"/containers/{path_id(name)}", query)
        except DaemonError as err:
            sys.stderr.write(f"Error response from daemon: {err.message}\n")
            # As docker: with --force, a container that does not exist is no failure.
            failed = failed or not (opts.force and err.status == 404)
            continue
        sys.stdout.write(f"{name}\n")
    return 1 if failed else 0


WAIT_SPEC = Spec("wait", "CONTAINER [CONTAINER...]",
                 "Block until one or more containers stop, then print their exit codes", [],
                 1, None)


def wait(ctx: Context, argv: list[str]) -> int:
    _, args = ctx.parse(WAIT_SPEC, argv)
    failed = False
    for name in args:
        try:
            result = ctx.client.post(f"/containers/{path_id(name)}/wait")
        except DaemonError as err:
            sys.stderr.write(f"Error response from daemon: {err.message}\n")
            failed = True
            continue
        sys.stdout.write(f"{result.get('StatusCode', 0)}\n")
        sys.stdout.flush()
    return 1 if failed else 0


RENAME_SPEC = Spec("rename", "CONTAINER NEW_NAME", "Rename a container", [], 2, 2)


def rename(ctx: Context, argv: list[str]) -> int:
    _, args = ctx.parse(RENAME_SPEC, argv)
    old, new = args[0].strip(), args[1].strip()
    if not new or not old:
        raise CommandFailed("Error: neither old nor new names may be empty", 1)
    try:
        ctx.client.request("POST", f"/containers/{path_id(old)}/rename", {"name": new}).read()
    except DaemonError as err:
        raise CommandFailed(f"Error response from daemon: {err.message}\n"
                            f"Error: failed to rename container named {old}", 1) from None
    return 0


UPDATE_SPEC = Spec("update", "[OPTIONS] CONTAINER [CONTAINER...]",
                   "Update configuration of one or more containers", [
                       ("", "blkio-weight", "int", 0, "Block IO (relative weight)"),
                       ("", "cpu-period", "int", 0, "Limit CPU CFS period"),
                       ("", "cpu-quota", "int", 0, "Limit CPU CFS quota"),
                       ("", "cpu-rt-period", "int", 0, "Limit the CPU real-time period"),
                       ("", "cpu-rt-runtime", "int", 0, "Limit the CPU real-time runtime"),
                       ("c", "cpu-shares", "int", 0, "CPU shares (relative weight)"),
                       ("", "cpus", "str", "", "Number of CPUs"),
                       ("", "cpuset-cpus", "str", "", "CPUs in which to allow execution"),
                       ("", "cpuset-mems", "str", "", "MEMs in which to allow execution"),
                       ("m", "memory", "str", "", "Memory limit"),
                       ("", "memory-reservation", "str", "", "Memory soft limit"),
                       ("", "memory-swap", "str", "", "Swap limit equal to memory plus swap"),
                       ("", "pids-limit", "int", 0, "Tune container pids limit"),
                       ("", "restart", "str", "", "Restart policy to apply when a container "
                                                  "exits"),
                   ], 1, None)


def update(ctx: Context, argv: list[str]) -> int:
    from ._runopts import _nano_cpus, _restart_policy, _size

    opts, args = ctx.parse(UPDATE_SPEC, argv)
    if not opts.given:
        raise CommandFailed("you must provide one or more flags when using this command", 1)
    body: dict[str, Any] = {}
    simple = {"blkio_weight": "BlkioWeight", "cpu_period": "CpuPeriod",
              "cpu_quota": "CpuQuota", "cpu_rt_period": "CpuRealtimePeriod",
              "cpu_rt_runtime": "CpuRealtimeRuntime", "cpu_shares": "CpuShares",
              "cpuset_cpus": "CpusetCpus", "cpuset_mems": "CpusetMems",
              "pids_limit": "PidsLimit"}
    for flag, key in simple.items():
        if flag in opts.given:
            body[key] = opts[flag]
    if "cpus" in opts.given:
        body["NanoCpus"] = _nano_cpus(opts.cpus)
    for flag, key in (("memory", "Memory"), ("memory_reservation", "MemoryReservation"),
                      ("memory_swap", "MemorySwap")):
        if flag in opts.given:
            body[key] = _size(opts[flag], f"--{flag.replace('_', '-')}")
    if "restart" in opts.given:
        body["RestartPolicy"] = _restart_policy(opts.restart)
    failed = False
    for name in args:
        try:
            result = ctx.client.post(f"/containers/{path_id(name)}/update", None, body)
        except DaemonError as err:
            sys.stderr.write(f"Error response from daemon: {err.message}\n")
            failed = True
            continue
        for warning in (result or {}).get("Warnings") or []:
            sys.stderr.write(f"{warning}\n")
        sys.stdout.write(f"{name}\n")
    return 1 if failed else 0


# -- logs and attach --------------------------------------------------------------------------

LOGS_SPEC = Spec("logs", "[OPTIONS] CONTAINER", "Fetch the logs of a container", [
    ("", "details", "bool", False, "Show extra details provided to logs"),
    ("f", "follow", "bool", False, "Follow log output"),
    ("", "since", "str", "", "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or "
                             "relative (e.g. \"42m\" for 42 minutes)"),
    ("n", "tail", "str", "all", "Number of lines to show from the end of the logs"),
    ("t", "timestamps", "bool", False, "Show timestamps"),
    ("", "until", "str", "", "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") "
                             "or relative (e.g. \"42m\" for 42 minutes)"),
], 1, 1)


def timestamp_arg(value: str, now: float | None = None) -> str:
    """docker's GetTimestamp: relative durations and RFC 3339 dates to Unix seconds."""
    if not value:
        return value
    now = time.time() if now is None else now
    from ._runopts import go_duration

    try:
        return str(int(now - go_duration(value) / 1e9))
    except ValueError:
        pass
    if value.replace(".", "", 1).isdigit():
        return value
    import datetime

    text = value.replace("Z", "+00:00")
    for form in (None, "%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H"):
        try:
            if form is None:
                moment = datetime.datetime.fromisoformat(text)
            else:
                moment = datetime.datetime.strptime(text, form)
            if moment.tzinfo is None:
                moment = moment.astimezone()
            seconds = moment.timestamp()
            return f"{int(seconds)}.{int(round((seconds % 1) * 1e9)):09d}"
        except ValueError:
            continue
    raise CommandFailed(f'invalid value for "since": failed to parse value as time or '
                        f'duration: "{value}"', 1)


def logs(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(LOGS_SPEC, argv)
    client = ctx.client
    info = client.get(f"/containers/{path_id(args[0])}/json")
    query: dict[str, Any] = {"stdout": "1", "stderr": "1"}
    if opts.since:
        query["since"] = timestamp_arg(opts.since)
    if opts.until:
        query["until"] = timestamp_arg(opts.until)
    if opts.timestamps:
        query["timestamps"] = "1"
    if opts.follow:
        query["follow"] = "1"
    if opts.tail != "all" and opts.tail:
        query["tail"] = opts.tail
    if opts.details:
        query["details"] = "1"
    response = client.request("GET", f"/containers/{info['Id']}/logs", query)
    from ._session import Demuxer, write_all

    tty = bool(info["Config"].get("Tty"))
    sink = (lambda data: write_all(1, data)) if tty else Demuxer().feed
    while True:
        piece = response.read_some()
        if not piece:
            break
        sink(piece)
    return 0


ATTACH_SPEC = Spec("attach", "[OPTIONS] CONTAINER",
                   "Attach local standard input, output, and error streams to a running "
                   "container", [
                       ("", "detach-keys", "str", "", "Override the key sequence for "
                                                      "detaching a container"),
                       ("", "no-stdin", "bool", False, "Do not attach STDIN"),
                       ("", "sig-proxy", "bool", True, "Proxy all received signals to the "
                                                       "process"),
                   ], 1, 1)


def attach(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(ATTACH_SPEC, argv)
    client = ctx.client
    info = client.get(f"/containers/{path_id(args[0])}/json")
    state = info["State"]
    if not state.get("Running"):
        raise CommandFailed("You cannot attach to a stopped container, start it first", 1)
    if state.get("Paused"):
        raise CommandFailed("You cannot attach to a paused container, unpause it first", 1)
    tty = bool(info["Config"].get("Tty"))
    streams = {"stdin": bool(info["Config"].get("OpenStdin")) and not opts.no_stdin,
               "stdout": True, "stderr": True}
    if tty and streams["stdin"] and not os.isatty(0):
        raise CommandFailed("the input device is not a TTY", 1)
    return _attached_session(ctx, info["Id"], streams, tty, auto_remove=False,
                             sig_proxy=opts.sig_proxy and not tty, start=False,
                             detach_keys=opts.detach_keys)


# -- exec -------------------------------------------------------------------------------------

EXEC_SPEC = Spec("exec", "[OPTIONS] CONTAINER COMMAND [ARG...]",
                 "Execute a command in a running container", [
                     ("d", "detach", "bool", False, "Detached mode: run command in the "
                                                    "background"),
                     ("", "detach-keys", "str", "", "Override the key sequence for "
                                                    "detaching a container"),
                     ("e", "env", "list", [], "Set environment variables"),
                     ("", "env-file", "list", [], "Read in a file of environment variables"),
                     ("i", "interactive", "bool", False, "Keep STDIN open even if not "
                                                         "attached"),
                     ("", "privileged", "bool", False, "Give extended privileges to the "
                                                       "command"),
                     ("t", "tty", "bool", False, "Allocate a pseudo-TTY"),
                     ("u", "user", "str", "", "Username or UID (format: "
                                              "\"<name|uid>[:<group|gid>]\")"),
                     ("w", "workdir", "str", "", "Working directory inside the container"),
                 ], 2, None, interspersed=False)


def exec_(ctx: Context, argv: list[str]) -> int:
    from ._runopts import _env_value, _read_lines

    opts, args = ctx.parse(EXEC_SPEC, argv)
    client = ctx.client
    if opts.tty and opts.interactive and not opts.detach and not os.isatty(0):
        raise CommandFailed("the input device is not a TTY", 1)
    env: list[str] = []
    for path in opts.env_file:
        env += [_env_value(line) for line in _read_lines(path, "env")]
    env += [_env_value(item) for item in opts.env]
    body: dict[str, Any] = {
        "User": opts.user, "Privileged": opts.privileged, "Tty": opts.tty,
        "AttachStdin": opts.interactive and not opts.detach,
        "AttachStderr": not opts.detach, "AttachStdout": not opts.detach,
        "Detach": opts.detach, "DetachKeys": opts.detach_keys, "Env": env or None,
        "WorkingDir": opts.workdir, "Cmd": args[1:],
    }
    if opts.tty:
        from ._session import terminal_size

        size = terminal_size()
        if size is not None:
            body["ConsoleSize"] = list(size)
    try:
        created = client.post(f"/containers/{path_id(args[0])}/exec", None, body)
    except DaemonError as err:
        raise CommandFailed(f"Error response from daemon: {err.message}", 1) from None
    exec_id = created["Id"]
    start_body = {"Detach": opts.detach, "Tty": opts.tty}
    if opts.detach:
        client.request("POST", f"/exec/{exec_id}/start", None, start_body).read()
        return 0
    from ._session import RawTerminal, copy_output, monitor_size, start_stdin_pump

    sock, leftover = client.hijack(f"/exec/{exec_id}/start", None, start_body)
    with RawTerminal(opts.tty and opts.interactive):
        if opts.tty and os.isatty(1):
            monitor_size(lambda h, w: client.request(
                "POST", f"/exec/{exec_id}/resize", {"h": h, "w": w}).read())
        if opts.interactive:
            start_stdin_pump(sock)
        copy_output(sock, leftover, opts.tty)
        sock.close()
    result = client.get(f"/exec/{exec_id}/json")
    return int(result.get("ExitCode") or 0)


# -- top, stats, port, diff -------------------------------------------------------------------

TOP_SPEC = Spec("top", "CONTAINER [ps OPTIONS]", "Display the running processes of a container",
                [], 1, None, interspersed=False)


def top(ctx: Context, argv: list[str]) -> int:
    from ._output import tabwrite

    _, args = ctx.parse(TOP_SPEC, argv)
    query = {"ps_args": " ".join(args[1:])} if len(args) > 1 else None
    result = ctx.client.get(f"/containers/{path_id(args[0])}/top", query)
    lines = ["\t".join(result.get("Titles") or [])]
    lines += ["\t".join(p) for p in result.get("Processes") or []]
    sys.stdout.write(tabwrite("\n".join(lines) + "\n", minwidth=20))
    return 0


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


PORT_SPEC = Spec("port", "CONTAINER [PRIVATE_PORT[/PROTO]]",
                 "List port mappings or a specific mapping for the container", [], 1, 2)


def port(ctx: Context, argv: list[str]) -> int:
    _, args = ctx.parse(PORT_SPEC, argv)
    info = ctx.client.get(f"/containers/{path_id(args[0])}/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}

    def host(binding: dict[str, str]) -> str:
        ip = binding.get("HostIp", "")
        ip = f"[{ip}]" if ":" in ip else ip
        return f"{ip}:{binding.get('HostPort', '')}"

    if len(args) == 2:
        wanted = args[1] if "/" in args[1] else f"{args[1]}/tcp"
        bindings = ports.get(wanted)
        if not bindings:
            raise CommandFailed(f"Error: No public port '{wanted}' published for {args[0]}", 1)
        sys.stdout.write("".join(f"{host(b)}\n" for b in bindings))
        return 0

    def order(key: str) -> tuple[int, str]:
        number, _, proto = key.partition("/")
        return int(number) if number.isdigit() else 0, proto

    for key in sorted(ports, key=order):
        for binding in ports[key] or []:
            sys.stdout.write(f"{key} -> {host(binding)}\n")
    return 0


DIFF_SPEC = Spec("diff", "CONTAINER",
                 "Inspect changes to files or directories on a container's filesystem", [],
                 1, 1)


def diff(ctx: Context, argv: list[str]) -> int:
    _, args = ctx.parse(DIFF_SPEC, argv)
    changes = ctx.client.get(f"/containers/{path_id(args[0])}/changes") or []
    kinds = {0: "C", 1: "A", 2: "D"}
    sys.stdout.write("".join(f"{kinds.get(c['Kind'], '?')} {c['Path']}\n" for c in changes))
    return 0


# -- export, cp, commit, inspect, prune -------------------------------------------------------

def write_stream(response: Any, output: str, what: str) -> None:
    """A binary reply body to -o FILE, or to stdout unless stdout is a terminal."""
    if output:
        target = open(output, "wb")  # noqa: SIM115
    else:
        if os.isatty(1):
            raise CommandFailed("cowardly refusing to save to a terminal. Use the -o flag "
                                "or redirect", 1)
        sys.stdout.flush()
        target = os.fdopen(os.dup(1), "wb")
    del what
    with target:
        while True:
            piece = response.read_some()
            if not piece:
                break
            target.write(piece)


EXPORT_SPEC = Spec("export", "[OPTIONS] CONTAINER",
                   "Export a container's filesystem as a tar archive", [
                       ("o", "output", "str", "", "Write to a file, instead of STDOUT"),
                   ], 1, 1)


def export(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(EXPORT_SPEC, argv)
    if not opts.output and os.isatty(1):
        raise CommandFailed("cowardly refusing to save to a terminal. Use the -o flag or "
                            "redirect", 1)
    response = ctx.client.request("GET", f"/containers/{path_id(args[0])}/export")
    write_stream(response, opts.output, "export")
    return 0


CP_SPEC = Spec("cp", "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard cp [OPTIONS] "
               "SRC_PATH|- CONTAINER:DEST_PATH",
               "Copy files/folders between a container and the local filesystem", [
                   ("a", "archive", "bool", False, "Archive mode (copy all uid/gid "
                                                   "information)"),
                   ("L", "follow-link", "bool", False, "Always follow symbol link in "
                                                       "SRC_PATH"),
                   ("q", "quiet", "bool", False, "Suppress progress output during copy"),
               ], 2, 2)


def cp(ctx: Context, argv: list[str]) -> int:
    from . import _copy

    opts, args = ctx.parse(CP_SPEC, argv)
    return _copy.copy(ctx, opts, args[0], args[1])


COMMIT_SPEC = Spec("commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
                   "Create a new image from a container's changes", [
                       ("a", "author", "str", "", "Author (e.g., \"John Hannibal Smith "
                                                  "<hannibal@a-team.com>\")"),
                       ("c", "change", "list", [], "Apply Dockerfile instruction to the "
                                                   "created image"),
                       ("m", "message", "str", "", "Commit message"),
                       ("p", "pause", "bool", True, "Pause container during commit"),
                   ], 1, 2)


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


def commit(ctx: Context, argv: list[str]) -> int:
    opts, args = ctx.parse(COMMIT_SPEC, argv)
    query: list[tuple[str, Any]] = [("container", args[0])]
    if len(args) > 1:
        repo, tag = split_reference(args[1])
        query += [("repo", repo), ("tag", tag)]
    query += [("comment", opts.message), ("author", opts.author),
              ("pause", "1" if opts.pause else "0")]
    query += [("changes", change) for change in opts.change]
    result = ctx.client.post("/commit", query, {})
    sys.stdout.write(f"{result['Id']}\n")
    return 0


INSPECT_SPEC = Spec("container inspect", "[OPTIONS] CONTAINER [CONTAINER...]",
                    "Display detailed information on one or more containers", [
                        ("f", "format", "str", "", "Format output using a custom template"),
                        ("s", "size", "bool", False, "Display total file sizes"),
                    ], 1, None)


def inspect(ctx: Context, argv: list[str]) -> int:
    from .system import inspect_objects

    opts, args = ctx.parse(INSPECT_SPEC, argv)
    return inspect_objects(ctx, args, "container", opts.format, opts.size)


PRUNE_SPEC = Spec("container prune", "[OPTIONS]", "Remove all stopped containers", [
    ("", "filter", "list", [], "Provide filter values (e.g. \"until=<timestamp>\")"),
    ("f", "force", "bool", False, "Do not prompt for confirmation"),
])


def confirm(message: str) -> bool:
    sys.stdout.write(f"{message}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def prune(ctx: Context, argv: list[str]) -> int:
    opts, _ = ctx.parse(PRUNE_SPEC, argv)
    if not opts.force and not confirm("WARNING! This will remove all stopped containers."):
        return 0
    filters = encode_filters(opts.filter)
    result = ctx.client.post("/containers/prune", {"filters": filters} if filters else None)
    deleted = result.get("ContainersDeleted") or []
    out = []
    if deleted:
        out.append("Deleted Containers:\n" + "".join(f"{d}\n" for d in deleted) + "\n")
    out.append(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed') or 0)}\n")
    sys.stdout.write("".join(out))
    return 0
