"""From a parsed request to a handler result: routing, versions, errors. No I/O here."""

from __future__ import annotations

import logging
from email.utils import formatdate
from urllib.parse import unquote

from ._config import ServerConfig
from ._errors import APIError, NotFound, NotModified
from ._ping import ping_router
from ._query import Query
from ._request import Body, Headers, Request
from ._response import HandlerResult, Response, empty_response, json_response
from ._router import Router
from ._versions import check_version, split_version_prefix

_log = logging.getLogger("dockyard.api")


def error_response(error: BaseException) -> Response:
    """Docker's error body `{"message": ...}` with the status the error's kind implies."""
    if isinstance(error, NotModified):
        # 304 has no body by definition (Go's server drops the one dockerd writes).
        return empty_response(304)
    if isinstance(error, APIError):
        return json_response({"message": error.message}, status=error.status)
    return json_response({"message": str(error) or type(error).__name__}, status=500)


class Dispatcher:
    """Routes requests to the engine's handlers, with /_ping served by the core."""

    def __init__(self, router: Router, config: ServerConfig) -> None:
        self.config = config
        self._builtin = ping_router(config)
        self._router = router

    def common_headers(self) -> list[tuple[str, str]]:
        """Headers on every response (dockerd's version and experimental middlewares).

        Names are spelled as Go canonicalizes them on the wire, e.g. "Api-Version".
        """
        return [
            ("Api-Version", self.config.api_version),
            ("Date", formatdate(usegmt=True)),
            ("Docker-Experimental", "true" if self.config.experimental else "false"),
            ("Ostype", "linux"),
            ("Server", self.config.server_header),
        ]

    async def dispatch(self, method: str, target: str, headers: Headers,
                       body: Body) -> tuple[Request | None, HandlerResult]:
        """Run the handler for one request; any error becomes Docker's error response."""
        raw_path, _, query = target.partition("?")
        raw_path = raw_path.partition("#")[0]
        # Routes match the decoded path (gorilla/mux's default), so "%40" in
        # "busybox%40sha256:..." (docker-py quotes '@') arrives as '@'.
        path = unquote(raw_path, errors="replace")
        requested, route_path = split_version_prefix(path)
        resolved = (self._builtin.resolve(method, route_path)
                    or self._router.resolve(method, route_path))
        if resolved is None:
            return None, error_response(NotFound("page not found"))
        handler, params = resolved
        request: Request | None = None
        try:
            if requested is not None:
                check_version(requested, self.config.min_api_version,
                              self.config.api_version)
            request = Request(method=method, path=route_path, target=target,
                              version=requested or self.config.api_version,
                              params=params, query=Query.parse(query), headers=headers,
                              body=body)
            return request, await handler(request)
        except APIError as error:
            level = logging.ERROR if error.status >= 500 else logging.DEBUG
            _log.log(level, "Handler for %s %s returned error: %s", method, path, error)
            return request, error_response(error)
        except Exception as error:
            _log.exception("Handler for %s %s failed", method, path)
            return request, error_response(error)
