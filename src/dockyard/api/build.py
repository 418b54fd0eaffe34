"""/build: the classic builder's endpoint (the docker CLI's path with DOCKER_BUILDKIT=0, or
when the daemon's /_ping offers Builder-Version 1), and /build/prune.

The body is the build context as a tar archive (plain or gzip/bzip2/xz/zstd). Errors
found before anything runs (a bad Dockerfile, a bad tag) are HTTP errors; once the
progress stream has begun they arrive in it as {"errorDetail": ..., "error": ...}.

Secrets for `RUN --mount=type=secret` (docker passes these only over BuildKit's session)
come in the `X-Dockyard-Build-Secrets` header: base64 of a JSON object mapping each secret
ID to its value, base64-encoded. They are written to a private file for the length of
each RUN that mounts them, and are neither cached nor recorded in the image.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import tempfile
import threading
from collections.abc import AsyncIterator
from typing import Any

from ..build import BuildError, BuildOptions
from ..engine.builds import BuildRequest, BuildService
from ..engine.engine import Engine
from ..engine.errors import EngineError
from . import (
    InvalidParameter,
    Request,
    Response,
    Router,
    StreamingResponse,
    json_response,
    json_stream,
)
from .engine_calls import call

SECRETS_HEADER = "X-Dockyard-Build-Secrets"
_log = logging.getLogger("dockyard.api")


def register(router: Router, engine: Engine) -> None:
    service = BuildService(engine)

    @router.route("POST", "/build")
    async def build(request: Request) -> StreamingResponse:
        build_request = _build_request(request)
        spool = tempfile.TemporaryFile(dir=engine.options.data_root)
        try:
            async for chunk in request.body:
                spool.write(chunk)
            spool.seek(0)
            prepared = await call(service.prepare, spool, build_request)
        finally:
            spool.close()
        loop = asyncio.get_running_loop()
        messages: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: dict[str, Any] | None) -> None:
            loop.call_soon_threadsafe(messages.put_nowait, item)

        def emit(message: dict[str, Any]) -> None:
            if cancelled.is_set():
                raise BuildError("context canceled")
            put(message)

        def work() -> None:
            try:
                service.build(prepared, emit)
            except BuildError as e:
                detail: dict[str, Any] = {"code": e.code} if e.code else {}
                put({"errorDetail": {**detail, "message": e.message}, "error": e.message})
            except EngineError as e:
                put({"errorDetail": {"message": str(e)}, "error": str(e)})
            except Exception as e:  # noqa: BLE001 - reported to the client, logged here
                _log.exception("build failed")
                put({"errorDetail": {"message": str(e)}, "error": str(e)})
            finally:
                prepared.close()
                put(None)

        loop.run_in_executor(None, work)

        async def stream() -> AsyncIterator[dict[str, Any]]:
            try:
                while True:
                    item = await messages.get()
                    if item is None:
                        return
                    yield item
            finally:
                cancelled.set()

        return json_stream(stream(), progress=True)

    @router.route("POST", "/build/prune")
    async def prune(request: Request) -> Response:
        result = await call(service.prune, request.query.get_bool("all", False))
        return json_response(result)

    @router.route("POST", "/build/cancel")
    async def cancel(request: Request) -> Response:
        return json_response({})


def _json_query(request: Request, name: str, kind: type) -> Any:
    text = request.query.get_str(name)
    if not text:
        return kind()
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidParameter(f"invalid {name} value: {text}") from None
    if not isinstance(value, kind):
        raise InvalidParameter(f"invalid {name} value: {text}")
    return value


def _build_request(request: Request) -> BuildRequest:
    query = request.query
    if query.get_str("version") == "2":
        raise InvalidParameter("BuildKit is not supported by this daemon: use the classic "
                               "builder (DOCKER_BUILDKIT=0, or version=1)")
    if query.get_str("remote"):
        raise InvalidParameter("remote build contexts are not supported: send the context "
                               "as the request body")
    args = _json_query(request, "buildargs", dict)
    labels = _json_query(request, "labels", dict)
    hosts = [h for value in query.get("extrahosts", []) for h in value.split(",") if h]
    platforms = [p.strip() for p in query.get_str("platform").split(",") if p.strip()]
    options = BuildOptions(
        build_args={str(k): (None if v is None else str(v)) for k, v in args.items()},
        target=query.get_str("target"),
        no_cache=query.get_bool("nocache", False),
        rm=query.get_bool("rm", True),
        force_rm=query.get_bool("forcerm", False),
        labels={str(k): str(v) for k, v in labels.items()},
        pull=query.get_bool("pull", False),
        network_mode=query.get_str("networkmode"),
        platform=platforms[0] if len(platforms) == 1 else "",
        extra_hosts=hosts,
        shm_size=query.get_int("shmsize", 0),
        secrets=_secrets(request.headers.get(SECRETS_HEADER) or ""),
        cache_from=[str(ref) for ref in _json_query(request, "cachefrom", list)],
    )
    return BuildRequest(dockerfile=query.get_str("dockerfile") or "Dockerfile",
                        tags=list(query.get("t", [])), options=options,
                        platforms=platforms if len(platforms) > 1 else [],
                        quiet=query.get_bool("q", False))


def _secrets(header: str) -> dict[str, bytes]:
    if not header:
        return {}
    try:
        doc = json.loads(base64.b64decode(header))
        return {str(k): base64.b64decode(v) for k, v in doc.items()}
    except (ValueError, binascii.Error, AttributeError, TypeError):
        raise InvalidParameter(f"invalid {SECRETS_HEADER} header") from None
