"""What a handler receives: the parsed request, its path parameters and a streamed body."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

from ._auth import AuthConfig, decode_registry_auth
from ._errors import InvalidParameter
from ._query import Query
from ._versions import compare_versions

# Returns the next chunk of the request body, or None once the body has ended.
ReceiveChunk = Callable[[], Awaitable[bytes | None]]


class Headers:
    """Request headers, looked up case-insensitively; repeated headers keep their order."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self._items = [(name.lower(), value) for name, value in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name`, or `default`."""
        wanted = name.lower()
        for key, value in self._items:
            if key == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self._items if key == wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def items(self) -> list[tuple[str, str]]:
        """(lower-case name, value) pairs in the order received."""
        return list(self._items)


class Body:
    """The request body as an async iterator of chunks, read from the socket on demand.

    Nothing is buffered ahead: a handler streaming a large upload (image load, build
    context) sees it chunk by chunk; a client that sent `Expect: 100-continue` gets its
    "100 Continue" only when the handler starts reading.
    """

    def __init__(self, receive: ReceiveChunk | None) -> None:
        self._receive = receive
        self._done = receive is None

    @property
    def done(self) -> bool:
        """True once the whole body has been read."""
        return self._done

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            assert self._receive is not None
            chunk = await self._receive()
            if chunk is None:
                self._done = True
                break
            if chunk:
                return chunk
        raise StopAsyncIteration

    async def read(self) -> bytes:
        """The rest of the body."""
        return b"".join([chunk async for chunk in self])


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


class Request:
    """One API request, routed: path without the version prefix, parameters unquoted."""

    def __init__(self, *, method: str, path: str, target: str, version: str,
                 params: Mapping[str, str], query: Query, headers: Headers,
                 body: Body) -> None:
        self.method = method
        self.path = path
        self.target = target
        self.version = version
        self.params = dict(params)
        self.query = query
        self.headers = headers
        self.body = body

    @property
    def upgrade(self) -> bool:
        """The client asked to hijack the connection (docker CLI, docker-py do)."""
        # dockerd only checks that an Upgrade header is present.
        return "upgrade" in self.headers

    def version_at_least(self, version: str) -> bool:
        """True when the negotiated API version is `version` or newer."""
        return compare_versions(self.version, version) >= 0

    async def json(self) -> Any:
        """The body decoded as JSON; None for an empty body (as dockerd treats it).

        Like dockerd, a non-empty body must be declared application/json, and anything
        that does not decode is a 400 "invalid JSON: ...".
        """
        data = await self.body.read()
        content_type = self.headers.get("content-type", "") or ""
        if not data.strip():
            return None
        if _media_type(content_type) != "application/json":
            raise InvalidParameter(
                f"unsupported Content-Type header ({content_type}): "
                "must be 'application/json'")
        try:
            text = data.decode("utf-8")
            value, end = json.JSONDecoder().raw_decode(text, len(text) - len(text.lstrip()))
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidParameter(f"invalid JSON: {error}") from None
        if text[end:].strip():
            raise InvalidParameter("unexpected content after JSON")
        return value

    def registry_auth(self) -> AuthConfig:
        """The X-Registry-Auth credentials (empty when absent); 400 when malformed."""
        return decode_registry_auth(self.headers.get("x-registry-auth"))
