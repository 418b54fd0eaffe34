"""What a handler returns: a complete response, a streamed one, or a hijack."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._errors import APIError
from ._hijack import HijackedStream
from ._streams import RAW_STREAM

_log = logging.getLogger("dockyard.api")

JSON = "application/json"
TAR = "application/x-tar"
TEXT = "text/plain; charset=utf-8"

HeaderList = Sequence[tuple[str, str]]


def encode_json(data: Any) -> bytes:
    """JSON the way dockerd writes it (Go's json.Encoder without HTML escaping):
    compact, UTF-8, one trailing newline."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text + "\n").encode()


@dataclass
class Response:
    """A complete response; the server adds Content-Length."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: HeaderList = field(default_factory=list)


@dataclass
class StreamingResponse:
    """A response whose body is produced while it is sent (Transfer-Encoding: chunked).

    Each chunk is written and flushed as soon as the iterator yields it, so progress
    lines and followed logs reach the client immediately. Validate the request (and
    raise NotFound & co.) before returning this: once the first byte is sent the status
    cannot change, and an exception from the iterator can only cut the connection.
    If the client goes away the iterator is closed (its `finally` blocks run).
    """

    chunks: AsyncIterable[bytes]
    status: int = 200
    content_type: str | None = JSON
    headers: HeaderList = field(default_factory=list)


# Runs on the hijacked connection; the server closes the connection when it returns.
HijackHandler = Callable[[HijackedStream], Awaitable[None]]


@dataclass
class Hijack:
    """Take over the connection for bidirectional streaming (attach, exec start).

    The server answers `101 UPGRADED` when the client asked for an upgrade, or
    `200 OK` without framing for older clients, then calls `run`.
    """

    run: HijackHandler
    content_type: str = RAW_STREAM
    headers: HeaderList = field(default_factory=list)


HandlerResult = Response | StreamingResponse | Hijack


def json_response(data: Any, status: int = 200, headers: HeaderList = ()) -> Response:
    return Response(status=status, body=encode_json(data), content_type=JSON,
                    headers=list(headers))


def empty_response(status: int = 204, headers: HeaderList = ()) -> Response:
    """A response without a body (204 No Content, 304 Not Modified, 201 ...)."""
    return Response(status=status, headers=list(headers))


def text_response(text: str, status: int = 200, headers: HeaderList = ()) -> Response:
    return Response(status=status, body=text.encode(), content_type=TEXT,
                    headers=list(headers))


def error_message(error: BaseException) -> dict[str, Any]:
    """The in-band error of a progress stream, as moby's JSONMessage encodes it."""
    return {"errorDetail": {"message": str(error)}, "error": str(error)}


async def _json_lines(items: AsyncIterable[Any], line_end: bytes,
                      report_errors: bool) -> AsyncIterator[bytes]:
    try:
        async for item in items:
            yield encode_json(item)[:-1] + line_end
    except Exception as error:
        if not report_errors:
            raise
        # The 200 is already sent: the client learns of the failure from the stream,
        # which is how `docker pull` prints "Error response from daemon" mid-way.
        if not isinstance(error, APIError):
            _log.exception("error in progress stream")
        yield encode_json(error_message(error))[:-1] + line_end


def json_stream(items: AsyncIterable[Any], *, progress: bool = False, status: int = 200,
                headers: HeaderList = ()) -> StreamingResponse:
    """One JSON object per line.

    `progress=True` is the format of pull/push/build/load/import (moby's
    streamformatter): lines end in CRLF and an exception raised by `items` becomes a
    final `{"errorDetail": ..., "error": ...}` line. Otherwise (events, stats) lines end
    in LF, as Go's json.Encoder writes them, and an exception cuts the stream.
    """
    line_end = b"\r\n" if progress else b"\n"
    return StreamingResponse(_json_lines(items, line_end, progress), status=status,
                             content_type=JSON, headers=list(headers))


def tar_stream(chunks: AsyncIterable[bytes], headers: HeaderList = ()) -> StreamingResponse:
    """A tar archive download (image save, container export, archive GET)."""
    return StreamingResponse(chunks, content_type=TAR, headers=list(headers))
