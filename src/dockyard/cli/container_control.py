"""Container lifecycle commands: start, stop, kill, restart, pause, unpause, rm, wait,
rename, update, container inspect and container prune."""

from __future__ import annotations

import sys

from ..units import human_size
from ._args import Options, Spec
from ._client import DaemonError
from ._context import CommandFailed, Context
from .container import attached_session, confirm, encode_filters, for_each, path_id

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any


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
        return attached_session(ctx, info["Id"], streams, tty, auto_remove=False,
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


# -- inspect and prune ------------------------------------------------------------------------

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
