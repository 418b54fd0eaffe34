"""/containers and /exec: create, list, inspect, lifecycle, logs, attach, exec."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

from ..engine.engine import Engine
from ..engine.logs import follow_logs, read_logs
from ..engine.timefmt import ZERO_TIME, parse_rfc3339
from ..units import human_duration
from . import (
    JSON,
    NotFound,
    Request,
    Response,
    Router,
    StreamingResponse,
    empty_response,
    encode_json,
    frame,
    json_response,
    stream_content_type,
)
from ._errors import InvalidParameter
from ._hijack import HijackedStream
from ._response import Hijack
from ._streams import STDERR, STDOUT
from .engine_calls import call

_INTERNAL_FIELDS = ("ImageTarget",)
_LOG_BATCH = 1 << 16


def register(router: Router, engine: Engine) -> None:
    containers = engine.containers

    @router.route("POST", "/containers/create")
    async def create(request: Request) -> Response:
        body = await request.json() or {}
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the body must be an object")
        host_config = body.pop("HostConfig", None) or {}
        networking = body.pop("NetworkingConfig", None)
        record = await call(containers.create, request.query.get_str("name") or None, body,
                            host_config, request.query.get_str("platform") or None,
                            networking_config=networking)
        return json_response({"Id": record["Id"], "Warnings": []}, status=201)

    @router.route("GET", "/containers/json")
    async def list_containers(request: Request) -> Response:
        filters = request.query.filters()
        show_all = request.query.get_bool("all", False)
        limit = request.query.get_int("limit", -1)
        records = sorted(containers.store.all(), key=lambda r: r["Created"], reverse=True)
        result = [summary(r) for r in records
                  if (show_all or r["State"]["Running"] or limit > 0)
                  and _container_matches(r, filters)]
        if limit > 0:
            result = result[:limit]
        return json_response(result)

    @router.route("GET", "/containers/{id}/json")
    async def inspect(request: Request) -> Response:
        record = await call(containers.get, request.params["id"])
        return json_response(inspect_view(record))

    @router.route("POST", "/containers/{id}/start")
    async def start(request: Request) -> Response:
        await call(containers.start, request.params["id"])
        return empty_response(204)

    @router.route("POST", "/containers/{id}/stop")
    async def stop(request: Request) -> Response:
        timeout = request.query.first("t") or request.query.first("timeout")
        await call(containers.stop, request.params["id"],
                         int(timeout) if timeout else None,
                         request.query.get_str("signal") or None)
        return empty_response(204)

    @router.route("POST", "/containers/{id}/restart")
    async def restart(request: Request) -> Response:
        timeout = request.query.first("t")
        await call(containers.restart, request.params["id"],
                         int(timeout) if timeout else None)
        return empty_response(204)

    @router.route("POST", "/containers/{id}/kill")
    async def kill(request: Request) -> Response:
        await call(containers.kill, request.params["id"],
                   request.query.get_str("signal") or None)
        return empty_response(204)

    @router.route("POST", "/containers/{id}/pause")
    async def pause(request: Request) -> Response:
        await call(containers.pause, request.params["id"])
        return empty_response(204)

    @router.route("POST", "/containers/{id}/unpause")
    async def unpause(request: Request) -> Response:
        await call(containers.unpause, request.params["id"])
        return empty_response(204)

    @router.route("POST", "/containers/{id}/rename")
    async def rename(request: Request) -> Response:
        record = await call(containers.get, request.params["id"])
        await call(containers.store.rename, record, request.query.get_str("name"))
        return empty_response(204)

    @router.route("POST", "/containers/{id}/wait")
    async def wait(request: Request) -> StreamingResponse:
        condition = request.query.get_str("condition") or "not-running"
        if condition not in ("not-running", "next-exit", "removed"):
            raise InvalidParameter(f'invalid condition: "{condition}"')
        record = await call(containers.get, request.params["id"])

        # The headers go out now, as dockerd flushes them: `docker run` waits for them
        # before it starts the container.
        async def result() -> AsyncIterator[bytes]:
            outcome = await call(containers.wait, record["Id"], condition)
            yield encode_json(outcome)

        return StreamingResponse(result(), content_type=JSON)

    @router.route("DELETE", "/containers/{id}")
    async def remove(request: Request) -> Response:
        await call(containers.remove, request.params["id"],
                   request.query.get_bool("force", False), request.query.get_bool("v", False))
        return empty_response(204)

    @router.route("POST", "/containers/{id}/resize")
    async def resize(request: Request) -> Response:
        record = await call(containers.get, request.params["id"])
        if record["State"]["Running"]:
            await call(containers._request, "resize", record["Id"],
                       height=request.query.get_int("h"), width=request.query.get_int("w"))
        return empty_response(200)

    @router.route("GET", "/containers/{id}/logs")
    async def logs(request: Request) -> StreamingResponse:
        record = await call(containers.get, request.params["id"])
        query = request.query
        if not query.get_bool("stdout") and not query.get_bool("stderr"):
            raise InvalidParameter("Bad parameters: you must choose at least one stream")
        tail_text = query.get_str("tail") or "all"
        tail = None if tail_text == "all" else int(tail_text) if tail_text.isdigit() else None
        since = query.get_time("since")
        until = query.get_time("until")
        tty = bool(record["Config"].get("Tty"))
        wanted = {name for name in ("stdout", "stderr") if query.get_bool(name)}
        timestamps = query.get_bool("timestamps")
        follow = query.get_bool("follow") and record["State"]["Running"]

        def render(entry: tuple[str, str, bytes]) -> bytes:
            stream_name, stamp, data = entry
            if timestamps:
                data = stamp.encode() + b" " + data
            return data if tty else frame(STDOUT if stream_name == "stdout" else STDERR, data)

        async def chunks() -> AsyncIterator[bytes]:
            log_path = _path(record["LogPath"])
            # The backlog goes out in large chunks: one HTTP chunk per line made `docker
            # logs` of 100k lines spend most of its time in per-chunk overhead.
            batch: list[bytes] = []
            size = 0
            for entry in await asyncio.to_thread(read_logs, log_path, tail, since, until):
                if entry[0] in wanted:
                    data = render(entry)
                    batch.append(data)
                    size += len(data)
                    if size >= _LOG_BATCH:
                        yield b"".join(batch)
                        batch, size = [], 0
            if batch:
                yield b"".join(batch)
            if follow:
                iterator = follow_logs(log_path, lambda: record["State"]["Running"], 0.0,
                                       until)
                while True:
                    entry = await asyncio.to_thread(next, iterator, None)
                    if entry is None:
                        return
                    if entry[0] in wanted:
                        yield render(entry)

        return StreamingResponse(chunks(), content_type=stream_content_type(
            request.version, not tty))

    @router.route("POST", "/containers/{id}/attach")
    async def attach(request: Request) -> Hijack:
        record = await call(containers.get, request.params["id"])
        query = request.query
        streams = {"stdin": query.get_bool("stdin"), "stdout": query.get_bool("stdout"),
                   "stderr": query.get_bool("stderr"),
                   "stdin_once": bool(record["Config"].get("StdinOnce"))}
        tty = bool(record["Config"].get("Tty"))
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[socket.socket | None] = loop.create_future()

        def deliver(sock: socket.socket | None) -> None:
            loop.call_soon_threadsafe(_settle, ready, sock)

        if query.get_bool("stream", True) or not query.get_bool("logs"):
            await call(containers.attach_when_started, record["Id"], streams, deliver)

        async def run(stream: HijackedStream) -> None:
            sock = await ready
            if sock is not None:
                await pipe(stream, sock, streams["stdin"])

        return Hijack(run, content_type=stream_content_type(request.version, not tty))

    _register_exec(router, engine)


def _settle(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():
        future.set_result(value)
    elif value is not None:
        value.close()


async def pipe(stream: HijackedStream, sock: socket.socket, with_stdin: bool) -> None:
    """Shim stream <-> client until the process's output ends; the client's half-close
    ends its stdin."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)

    async def upstream() -> None:
        while True:
            data = await stream.read(65536)
            if not data:
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            await loop.sock_sendall(sock, data)

    feeder = asyncio.create_task(upstream()) if with_stdin else None
    try:
        while True:
            data = await loop.sock_recv(sock, 65536)
            if not data:
                break
            await stream.write(data)
    finally:
        if feeder is not None:
            feeder.cancel()
        sock.close()


def _register_exec(router: Router, engine: Engine) -> None:
    execs = engine.execs
    containers = engine.containers

    @router.route("POST", "/containers/{id}/exec")
    async def exec_create(request: Request) -> Response:
        body = await request.json() or {}
        exec_id = await call(execs.create, request.params["id"], body)
        return json_response({"Id": exec_id}, status=201)

    @router.route("GET", "/exec/{id}/json")
    async def exec_inspect(request: Request) -> Response:
        return json_response(await call(execs.inspect, request.params["id"]))

    @router.route("POST", "/exec/{id}/resize")
    async def exec_resize(request: Request) -> Response:
        instance = await call(execs.get, request.params["id"])
        if instance["Running"]:
            await call(containers._request, "resize", instance["ContainerID"],
                       exec_id=instance["ID"], height=request.query.get_int("h"),
                       width=request.query.get_int("w"))
        return empty_response(200)

    @router.route("POST", "/exec/{id}/start")
    async def exec_start(request: Request) -> Response | Hijack:
        body = await request.json() or {}
        exec_id = request.params["id"]
        instance = await call(execs.get, exec_id)
        if body.get("Detach"):
            await call(execs.start, exec_id, None)
            return empty_response(200)
        streams = {"stdin": instance["OpenStdin"], "stdout": instance["OpenStdout"],
                   "stderr": instance["OpenStderr"], "stdin_once": True}
        tty = bool(instance["ProcessConfig"]["tty"])

        async def run(stream: HijackedStream) -> None:
            # Started only once the client has the 101: output that followed the headers
            # in one packet could be lost in a client's HTTP buffer (docker-py's is).
            try:
                sock = await call(execs.start, exec_id, streams)
            except Exception as error:  # noqa: BLE001 - reported on the stream, as dockerd
                message = f"{error}\r\n".encode()
                await stream.write(message if tty else frame(STDERR, message))
                return
            if sock is not None:
                await pipe(stream, sock, streams["stdin"])
            await call(execs.wait, exec_id, 10)

        return Hijack(run, content_type=stream_content_type(request.version, not tty))


def _path(text: str) -> Any:
    from pathlib import Path

    return Path(text)


def summary(record: dict[str, Any]) -> dict[str, Any]:
    config = record["Config"]
    command = " ".join([record["Path"], *record["Args"]]).strip()
    return {
        "Id": record["Id"], "Names": [record["Name"]], "Image": config.get("Image", ""),
        "ImageID": record["Image"], "Command": command,
        "Created": int(parse_rfc3339(record["Created"])), "Ports": _port_summary(record),
        "Labels": config.get("Labels") or {}, "State": record["State"]["Status"],
        "Status": status_text(record["State"]),
        "HostConfig": {"NetworkMode": record["HostConfig"].get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": (record.get("NetworkSettings") or {}).get("Networks")
                            or {}}, "Mounts": record.get("Mounts") or [],
    }


def _port_summary(record: dict[str, Any]) -> list[dict[str, Any]]:
    """`ps`'s Ports: each published binding, and exposed ports that are not published."""
    result: list[dict[str, Any]] = []
    for key, bindings in ((record.get("NetworkSettings") or {}).get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        if not bindings:
            result.append({"PrivatePort": int(port), "Type": proto or "tcp"})
        for b in bindings or []:
            result.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(port),
                           "PublicPort": int(b.get("HostPort") or 0), "Type": proto or "tcp"})
    return result


def inspect_view(record: dict[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in record.items() if k not in _INTERNAL_FIELDS}
    view["State"] = {k: v for k, v in record["State"].items() if k != "RemovalInProgress"}
    view["GraphDriver"] = {"Name": "overlay2", "Data": None}
    return view


def status_text(state: dict[str, Any]) -> str:
    now = time.time()
    if state.get("RemovalInProgress"):
        return "Removal In Progress"
    if state["Running"]:
        text = f"Up {human_duration(now - parse_rfc3339(state['StartedAt']))}"
        return text + " (Paused)" if state["Paused"] else text
    if state["StartedAt"] == ZERO_TIME and state["FinishedAt"] == ZERO_TIME:
        return "Created"
    finished = parse_rfc3339(state["FinishedAt"])
    return f"Exited ({state['ExitCode']}) {human_duration(now - finished)} ago"


def _container_matches(record: dict[str, Any], filters: Any) -> bool:
    state = record["State"]
    for key in filters:
        values = filters.values_of(key)
        if key == "status" and state["Status"] not in values:
            return False
        if key == "name" and not any(v.lstrip("/") in record["Name"] for v in values):
            return False
        if key == "id" and not any(record["Id"].startswith(v) for v in values):
            return False
        if key == "label" and not filters.match_kv_list("label",
                                                       record["Config"].get("Labels") or {}):
            return False
        if key == "exited" and (state["Running"] or str(state["ExitCode"]) not in values):
            return False
        if key == "ancestor" and not any(v in (record["Config"].get("Image"),
                                               record["Image"]) for v in values):
            return False
        if key == "volume":
            # A volume's name or a mount point, as dockerd's filter.
            mounts = record.get("Mounts") or []
            if not any(v in (m.get("Name"), m.get("Destination"), m.get("Source"))
                       for v in values for m in mounts):
                return False
        if key == "network":
            networks = (record.get("NetworkSettings") or {}).get("Networks") or {}
            known = set(networks) | {e.get("NetworkID") for e in networks.values()}
            if not any(v in known or any(str(n or "").startswith(v) for n in known
                                         if len(v) >= 12) for v in values):
                return False
    return True


__all__ = ["register", "NotFound"]
