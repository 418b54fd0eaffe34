"""/images: list, inspect, history, tag, remove, load, save."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import Any

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


def register(router: Router, engine: Engine) -> None:
    images = engine.images

    @router.route("GET", "/images/json")
    async def list_images(request: Request) -> Response:
        filters = request.query.filters()
        filters.validate({"dangling", "label", "reference", "before", "since"})
        show_all = request.query.get_bool("all", False)
        summaries = []
        for target, image in await call(images.all):
            if not show_all and images.is_intermediate(target):
                continue  # a build step under another image (docker images -a shows it)
            summary = images.summary(target, image)
            if not _image_matches(summary, filters, images):
                continue
            if not request.query.get_bool("digests", False) and request.version < "1.40":
                summary.pop("RepoDigests", None)
            summaries.append(summary)
        summaries.sort(key=lambda s: -s["Created"])
        return json_response(summaries)

    @router.route("GET", "/images/{name:path}/json")
    async def inspect(request: Request) -> Response:
        target, image = await call(images.find, request.params["name"])
        return json_response(images.inspect(target, image))

    @router.route("GET", "/images/{name:path}/history")
    async def history(request: Request) -> Response:
        _, image = await call(images.find, request.params["name"])
        return json_response(images.history(image))

    @router.route("POST", "/images/{name:path}/tag")
    async def tag(request: Request) -> Response:
        await call(images.tag, request.params["name"], request.query.get_str("repo") or "",
                   request.query.get_str("tag") or "")
        return empty_response(201)

    @router.route("DELETE", "/images/{name:path}")
    async def remove(request: Request) -> Response:
        name = request.params["name"]
        target, image = await call(images.find, name)
        users = [r["Id"] for r in engine.containers.store.all() if r["Image"] == str(image.id)]
        result = await call(images.remove, name, request.query.get_bool("force", False), users)
        return json_response(result)

    @router.route("POST", "/images/load")
    async def load(request: Request) -> StreamingResponse:
        # Spooled to a file first: the archive layer reads a stream synchronously in a
        # worker thread, and the body arrives on the event loop.
        spool = tempfile.TemporaryFile(dir=engine.options.data_root)
        async for chunk in request.body:
            spool.write(chunk)
        spool.seek(0)

        async def messages() -> AsyncIterator[dict[str, Any]]:
            try:
                loaded = await call(images.load, spool)
            finally:
                spool.close()
            for image in loaded:
                names = [t.familiar() for t in image.repo_tags]
                for name in names or [str(image.id)]:
                    label = "Loaded image" if names else "Loaded image ID"
                    yield {"stream": f"{label}: {name}\n"}

        return json_stream(messages(), progress=True)

    @router.route("GET", "/images/get")
    async def save_many(request: Request) -> StreamingResponse:
        return await _save(engine, list(request.query["names"]) if "names" in request.query
                           else [])

    @router.route("GET", "/images/{name:path}/get")
    async def save_one(request: Request) -> StreamingResponse:
        return await _save(engine, [request.params["name"]])

    register_distribution(router, engine)


async def _save(engine: Engine, names: list[str]) -> StreamingResponse:
    for name in names:
        await call(engine.images.find, name)  # 404 before the stream starts
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb", buffering=0)
    writer = os.fdopen(write_fd, "wb")

    def produce() -> None:
        try:
            engine.images.save(names, writer)
        finally:
            writer.close()

    task = asyncio.get_running_loop().run_in_executor(None, produce)

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                data = await asyncio.to_thread(reader.read, _CHUNK)
                if not data:
                    break
                yield data
            await task
        finally:
            reader.close()

    return tar_stream(chunks())


def _image_matches(summary: dict[str, Any], filters: Any, images: Any) -> bool:
    if "dangling" in filters:
        dangling = filters.get_bool("dangling", False)
        if dangling != (not summary["RepoTags"]):
            return False
    if "label" in filters and not filters.match_kv_list("label", summary.get("Labels") or {}):
        return False
    if "reference" in filters:
        import fnmatch

        patterns = filters.values_of("reference")
        names = summary["RepoTags"] + [t.rsplit(":", 1)[0] for t in summary["RepoTags"]]
        if not any(fnmatch.fnmatch(n, p) for n in names for p in patterns):
            return False
    for key, newer in (("before", False), ("since", True)):
        if key in filters:
            for ref in filters.values_of(key):
                _, other = images.find(ref)
                other_created = images.summary(*images.find(ref))["Created"]
                del other
                if newer and summary["Created"] <= other_created:
                    return False
                if not newer and summary["Created"] >= other_created:
                    return False
    return True


# -- registries (pull, push, distribution inspect) ---------------------------------------------

def _credentials(request: Request) -> Any:
    from ..engine.distribution import credentials_from
    from ..engine.errors import EngineError
    from .engine_calls import translate

    auth = request.registry_auth()
    try:
        return credentials_from(auth.username, auth.password, auth.auth, auth.identitytoken,
                                auth.registrytoken)
    except EngineError as error:
        raise translate(error) from None


async def progress_response(work: Callable[[Callable[[dict[str, Any]], None]], None]
                            ) -> StreamingResponse:
    """Run `work(emit)` in a worker thread and stream what it emits as progress JSON. An
    error before the first message is the HTTP error itself (dockerd answers so: "Error
    response from daemon: manifest for x not found"); later it ends the stream."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()

    def emit(message: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, message)

    def run() -> None:
        try:
            work(emit)
        except BaseException as error:  # noqa: BLE001 - handed to the event loop
            loop.call_soon_threadsafe(queue.put_nowait, error)
            return
        loop.call_soon_threadsafe(queue.put_nowait, done)

    loop.run_in_executor(None, run)
    first = await queue.get()
    if isinstance(first, BaseException):
        raise _api_error(first)

    async def messages() -> AsyncIterator[dict[str, Any]]:
        item = first
        while item is not done:
            if isinstance(item, BaseException):
                raise _api_error(item)
            yield item
            item = await queue.get()

    return json_stream(messages(), progress=True)


def _api_error(error: BaseException) -> BaseException:
    from ..engine.errors import EngineError
    from .engine_calls import translate

    return translate(error) if isinstance(error, EngineError) else error


async def pull_response(request: Request, engine: Engine) -> StreamingResponse:
    """POST /images/create?fromImage=&tag=&platform=."""
    query = request.query
    credentials = _credentials(request)
    return await progress_response(lambda emit: engine.distribution.pull(
        query.get_str("fromImage"), query.get_str("tag"), query.get_str("platform"),
        credentials, emit))


def register_distribution(router: Router, engine: Engine) -> None:
    @router.route("POST", "/images/{name:path}/push")
    async def push(request: Request) -> StreamingResponse:
        name = request.params["name"]
        tag = request.query.get_str("tag")
        credentials = _credentials(request)
        platform = _push_platform(request.query.get_str("platform"))
        return await progress_response(lambda emit: engine.distribution.push(
            name, tag, credentials, emit, platform=platform))

    @router.route("GET", "/distribution/{name:path}/json")
    async def distribution_inspect(request: Request) -> Response:
        if request.query.get_bool("manifests", False):
            # Dockyard's own addition, for `dockyard manifest inspect`: the documents.
            return json_response(await call(engine.distribution.manifests,
                                            request.params["name"], _credentials(request)))
        return json_response(await call(engine.distribution.inspect, request.params["name"],
                                        _credentials(request)))

    @router.route("POST", "/auth")
    async def auth(request: Request) -> Response:
        from ..engine.distribution import RegistryUnauthorized, credentials_from
        from ._errors import Unauthorized

        body = await request.json()
        if not isinstance(body, dict):
            raise InvalidParameter("invalid JSON: the body must be an AuthConfig object")
        fields = {k.lower(): v for k, v in body.items() if isinstance(v, str)}
        try:
            credentials = credentials_from(
                fields.get("username", ""), fields.get("password", ""), fields.get("auth", ""),
                fields.get("identitytoken", ""), fields.get("registrytoken", ""))
            result = await asyncio.to_thread(engine.distribution.login,
                                             fields.get("serveraddress", ""), credentials)
        except RegistryUnauthorized as error:
            raise Unauthorized(str(error)) from None
        except Exception as error:
            raise _api_error(error) from None
        return json_response(result)


def _push_platform(text: str) -> Any:
    """The `platform` of a push: JSON of an OCI platform (API 1.46), or "os/arch[/variant]"
    as the CLI flag is written."""
    if not text:
        return None
    import json

    from ..image import ImageError, normalize_platform, parse_platform

    try:
        if text.lstrip().startswith("{"):
            doc = json.loads(text)
            text = "/".join(part for part in (doc.get("os", ""), doc.get("architecture", ""),
                                              doc.get("variant", "")) if part)
        return normalize_platform(parse_platform(text))
    except (ValueError, AttributeError, ImageError) as error:
        raise InvalidParameter(f"invalid platform: {error}") from None
