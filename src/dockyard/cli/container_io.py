"""Container streams and files: logs, attach, exec, top, port, diff, export, cp and
commit."""

from __future__ import annotations

import os
import sys
import time

from ._args import Spec
from ._client import DaemonError
from ._context import CommandFailed, Context
from .container import attached_session, path_id, split_reference

TYPE_CHECKING = False
if TYPE_CHECKING:   # typing costs ~10 ms at start-up
    from typing import Any


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
    return attached_session(ctx, info["Id"], streams, tty, auto_remove=False,
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


# -- top, port, diff --------------------------------------------------------------------------

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


# -- export, cp, commit -----------------------------------------------------------------------

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
