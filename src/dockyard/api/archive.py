"""A container's files: changes (docker diff), export, archive (docker cp), commit, and
image import (POST /images/create?fromSrc=)."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import IO, Any

from ..engine.archive import ArchiveService, encode_path_stat
from ..engine.commit import CommitService
from ..engine.engine import Engine
from . import (
    InvalidParameter,
    Request,
    Response,
    Router,
    StreamingResponse,
    empty_response,
    json_response,
    json_stream,
    tar_stream,
)
from .engine_calls import call

_CHUNK = 1 << 20
_STAT_HEADER = "X-Docker-Container-Path-Stat"

_log = logging.getLogger("dockyard.api")


def register(router: Router, engine: Engine) -> None:
    files = ArchiveService(engine)
    images = CommitService(engine)

    @router.route("GET", "/containers/{id}/changes")
    async def changes(request: Request) -> Response:
        return json_response(await call(files.changes, request.params["id"]))

    @router.route("GET", "/containers/{id}/export")
    async def export(request: Request) -> StreamingResponse:
        ref = request.params["id"]
        await call(engine.containers.get, ref)  # 404 before the stream starts
        return _stream(lambda sink: files.export(ref, sink))

    @router.route("HEAD", "/containers/{id}/archive")
    async def stat(request: Request) -> Response:
        info = await call(files.stat, request.params["id"], _path_param(request))
        return empty_response(200, headers=[(_STAT_HEADER, encode_path_stat(info))])

    @router.route("GET", "/containers/{id}/archive")
    async def archive(request: Request) -> StreamingResponse:
        ref, path = request.params["id"], _path_param(request)
        info = await call(files.stat, ref, path)
        return _stream(lambda sink: files.archive(ref, path, sink),
                       headers=[(_STAT_HEADER, encode_path_stat(info))])

    @router.route("PUT", "/containers/{id}/archive")
    async def extract(request: Request) -> Response:
        ref, path = request.params["id"], _path_param(request)
        await call(engine.containers.get, ref)
        with await _spool(request, engine) as upload:
            await call(files.extract, ref, path, upload,
                       request.query.get_bool("noOverwriteDirNonDir", False),
                       request.query.get_bool("copyUIDGID", False))
        return empty_response(200)

    @router.route("POST", "/commit")
    async def commit(request: Request) -> Response:
        body = await request.json()
        if body is not None and not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the body must be an object")
        query = request.query
        container = query.get_str("container")
        if not container:
            raise InvalidParameter("No container name or ID supplied")
        image_id = await call(images.commit, container, query.get_str("repo"),
                              query.get_str("tag"), query.get_str("comment"),
                              query.get_str("author"), _changes(request),
                              query.get_bool("pause", True), body)
        return json_response({"Id": image_id}, status=201)

    @router.route("POST", "/images/create")
    async def create_image(request: Request) -> StreamingResponse:
        query = request.query
        if query.get_str("fromImage"):
            from .images import pull_response

            return await pull_response(request, engine)
        source = query.get_str("fromSrc")
        if not source:
            raise InvalidParameter("either fromImage or fromSrc is required")
        if source != "-":
            from ..engine.distribution import download_url

            upload = tempfile.TemporaryFile(dir=engine.options.data_root)
            try:
                await call(download_url, source, upload)
            except BaseException:
                upload.close()
                raise
        else:
            upload = await _spool(request, engine)

        async def messages() -> AsyncIterator[dict[str, Any]]:
            try:
                image_id = await call(images.import_image, upload, query.get_str("repo"),
                                      query.get_str("tag"), query.get_str("message"),
                                      _changes(request), query.get_str("platform"), source)
            finally:
                upload.close()
            yield {"status": image_id}

        return json_stream(messages(), progress=True)


def _path_param(request: Request) -> str:
    path = request.query.get_str("path")
    if not path:
        raise InvalidParameter("path is required")  # dockerd's wording for archive routes
    return path


def _changes(request: Request) -> list[str]:
    return list(request.query["changes"]) if "changes" in request.query else []


async def _spool(request: Request, engine: Engine) -> IO[bytes]:
    """The request body in a temporary file (the engine reads it synchronously in a worker
    thread; the body arrives on the event loop)."""
    spool = tempfile.TemporaryFile(dir=engine.options.data_root)
    try:
        async for chunk in request.body:
            await asyncio.to_thread(spool.write, chunk) if len(chunk) > _CHUNK \
                else spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _stream(produce: Callable[[IO[bytes]], None],
            headers: list[tuple[str, str]] | None = None) -> StreamingResponse:
    """A tar written by produce(sink) in a worker thread, streamed as it is written."""
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb", buffering=0)
    writer = os.fdopen(write_fd, "wb")

    def run() -> None:
        try:
            produce(writer)
        except BrokenPipeError:
            pass  # the client went away
        except Exception:  # noqa: BLE001 - the 200 is sent: the client sees a cut tar
            _log.exception("error while streaming a tar")
        finally:
            try:
                writer.close()
            except BrokenPipeError:
                pass

    task = asyncio.get_running_loop().run_in_executor(None, run)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                data = await asyncio.to_thread(reader.read, _CHUNK)
                if not data:
                    break
                yield data
        finally:
            reader.close()
            await task

    return tar_stream(chunks(), headers=headers or [])
