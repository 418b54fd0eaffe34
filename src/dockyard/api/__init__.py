"""The Engine API's HTTP layer: server, routing, requests, responses, streams.

The engine builds a `Router`, registers one handler per endpoint, and runs an
`ApiServer` on it. A handler is `async def handler(request: Request) -> result` where
the result is a `Response` (see `json_response`, `empty_response`), a
`StreamingResponse` (`json_stream`, `tar_stream`) or a `Hijack` (attach, exec start).
Raising an `APIError` subclass (`NotFound`, `Conflict`, ...) answers with Docker's
status and `{"message": ...}`. The core itself serves only GET/HEAD /_ping.
"""

from ._auth import AuthConfig, decode_registry_auth, encode_registry_auth
from ._config import ServerConfig
from ._errors import (
    APIError,
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    NotImplemented,
    NotModified,
    ServerError,
    Unauthorized,
    Unavailable,
)
from ._filters import Filters, parse_filters
from ._hijack import HijackedStream
from ._listeners import ListenError
from ._query import Query, parse_bool
from ._request import Body, Headers, Request
from ._response import (
    JSON,
    TAR,
    Hijack,
    HijackHandler,
    Response,
    StreamingResponse,
    empty_response,
    encode_json,
    error_message,
    json_response,
    json_stream,
    tar_stream,
    text_response,
)
from ._router import Handler, Router
from ._server import ApiServer
from ._streams import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    STDERR,
    STDIN,
    STDOUT,
    SYSTEMERR,
    FrameDecoder,
    demultiplex,
    frame,
    stream_content_type,
)
from ._versions import API_VERSION, MIN_API_VERSION, compare_versions

__all__ = [
    "API_VERSION", "JSON", "MIN_API_VERSION", "MULTIPLEXED_STREAM", "RAW_STREAM", "STDERR",
    "STDIN", "STDOUT", "SYSTEMERR", "TAR",
    "APIError", "ApiServer", "AuthConfig", "Body", "Conflict", "Filters", "Forbidden",
    "FrameDecoder", "Handler", "Headers", "Hijack", "HijackHandler", "HijackedStream",
    "InvalidParameter", "ListenError", "NotFound", "NotImplemented", "NotModified", "Query",
    "Request", "Response", "Router", "ServerConfig", "ServerError", "StreamingResponse",
    "Unauthorized", "Unavailable",
    "compare_versions", "decode_registry_auth", "demultiplex", "empty_response",
    "encode_json", "encode_registry_auth", "error_message", "frame", "json_response",
    "json_stream", "parse_bool", "parse_filters", "stream_content_type", "tar_stream",
    "text_response",
]
