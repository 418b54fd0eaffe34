"""/containers/{id}/top, /stats, /update, and /containers/prune, /images/prune."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from ..engine.engine import Engine
from ..engine.errors import NotFound as EngineNotFound
from ..engine.monitor import ContainerMonitor, public
from ..engine.timefmt import parse_rfc3339
from . import JSON, Filters, Request, Response, Router, StreamingResponse, json_response
from ._errors import InvalidParameter
from .engine_calls import call

STATS_INTERVAL = 1.0  # seconds between two samples, as dockerd's collector
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def register(router: Router, engine: Engine) -> None:
    monitor = ContainerMonitor(engine.containers, engine.images)

    @router.route("GET", "/containers/{id}/top")
    async def top(request: Request) -> Response:
        listing = await call(monitor.top, request.params["id"],
                             request.query.get_str("ps_args"))
        return json_response(listing)

    @router.route("GET", "/containers/{id}/stats")
    async def stats(request: Request) -> StreamingResponse:
        record = await call(engine.containers.get, request.params["id"])
        container_id = record["Id"]
        stream = request.query.get_bool("stream", True)
        one_shot = request.query.get_bool("one-shot", False)
        if stream and one_shot:
            raise InvalidParameter("cannot have stream=true and one-shot=true")

        async def sample(previous: dict[str, Any] | None) -> dict[str, Any] | None:
            try:
                return await asyncio.to_thread(monitor.sample, container_id, previous)
            except EngineNotFound:
                return None  # removed meanwhile: the stream ends

        async def chunks() -> AsyncIterator[bytes]:
            previous = None
            if not stream:
                if not one_shot and record["State"]["Running"]:
                    previous = await sample(None)
                    await asyncio.sleep(STATS_INTERVAL)
                current = await sample(previous)
                if current is not None:
                    yield _line(current)
                return
            while True:
                current = await sample(previous)
                if current is None:
                    return
                yield _line(current)
                previous = current
                await asyncio.sleep(STATS_INTERVAL)

        return StreamingResponse(chunks(), content_type=JSON)

    @router.route("POST", "/containers/{id}/update")
    async def update(request: Request) -> Response:
        body = await request.json() or {}
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the body must be an object")
        return json_response(await call(monitor.update, request.params["id"], body))

    @router.route("POST", "/containers/prune")
    async def prune_containers(request: Request) -> Response:
        filters = request.query.filters()
        filters.validate(("until", "label", "label!"))
        report = await call(monitor.prune_containers, _until(filters),
                            filters.values_of("label"), filters.values_of("label!"))
        return json_response(report)

    @router.route("POST", "/images/prune")
    async def prune_images(request: Request) -> Response:
        filters = request.query.filters()
        filters.validate(("dangling", "until", "label", "label!"))
        report = await call(monitor.prune_images, filters.get_bool("dangling", True),
                            _until(filters), filters.values_of("label"),
                            filters.values_of("label!"))
        return json_response(report)


def _line(stats: dict[str, Any]) -> bytes:
    return (json.dumps(public(stats)) + "\n").encode()


def _until(filters: Filters) -> float | None:
    """The `until` filter as seconds since the epoch: a Unix timestamp, an RFC 3339 time or
    a Go duration ("10m", "1h30m") before now."""
    values = filters.values_of("until")
    if not values:
        return None
    if len(values) > 1:
        raise InvalidParameter("more than one until filter specified")
    text = values[0]
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if parts and "".join(n + u for n, u in parts) == text.lstrip("-"):
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
        return time.time() - (-seconds if text.startswith("-") else seconds)
    moment = parse_rfc3339(text if "T" in text else f"{text}T00:00:00Z")
    if not moment:
        raise InvalidParameter(f'invalid filter \'until={text}\'')
    return moment
