"""Method + path pattern -> handler.

Patterns are paths with parameters: `{id}` matches one path segment, `{name:path}` any
non-empty text including '/', because image references contain slashes
(`/images/docker.io/library/busybox:latest/json`). As with dockerd's routes
(`/images/{name:.*}/json`), the fixed text after a path parameter picks the route and
the parameter takes everything before it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ._request import Request
from ._response import HandlerResult

Handler = Callable[[Request], Awaitable[HandlerResult]]

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(path))?\}")


@dataclass(frozen=True)
class _Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    # Routes with fewer wildcards are tried first, so "/images/json" is never taken
    # for an image named "json"-something; ties go to the first registered.
    rank: tuple[int, int, int]


def _compile(pattern: str) -> tuple[re.Pattern[str], int, int]:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern must start with '/': {pattern!r}")
    parts: list[str] = []
    names: set[str] = set()
    path_params = segment_params = 0
    position = 0
    for match in _PARAMETER.finditer(pattern):
        parts.append(re.escape(pattern[position:match.start()]))
        name, kind = match.group(1), match.group(2)
        if name in names:
            raise ValueError(f"duplicate parameter {name!r} in {pattern!r}")
        names.add(name)
        if kind == "path":
            path_params += 1
            parts.append(f"(?P<{name}>.+)")
        else:
            segment_params += 1
            parts.append(f"(?P<{name}>[^/]+)")
        position = match.end()
    rest = pattern[position:]
    if "{" in rest or "}" in rest:
        raise ValueError(f"malformed parameter in route pattern {pattern!r}")
    parts.append(re.escape(rest))
    return re.compile("".join(parts)), path_params, segment_params


class Router:
    """The table of API routes; the engine registers one handler per endpoint."""

    def __init__(self) -> None:
        self._routes: dict[str, list[_Route]] = {}
        self._count = 0

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve `method pattern` (e.g. "GET", "/containers/{id}/json") with `handler`."""
        method = method.upper()
        regex, path_params, segment_params = _compile(pattern)
        routes = self._routes.setdefault(method, [])
        if any(route.pattern == pattern for route in routes):
            raise ValueError(f"route already registered: {method} {pattern}")
        self._count += 1
        routes.append(_Route(method, pattern, regex, handler,
                             (path_params, segment_params, self._count)))
        routes.sort(key=lambda route: route.rank)

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator form of `add`."""
        def register(handler: Handler) -> Handler:
            self.add(method, pattern, handler)
            return handler
        return register

    def include(self, other: Router) -> None:
        """Add every route of `other` (one router per resource module, merged)."""
        for routes in other._routes.values():
            for route in sorted(routes, key=lambda r: r.rank[2]):
                self.add(route.method, route.pattern, route.handler)

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        """The handler and parameters for a decoded, unversioned path, or None.

        A path served only for other methods is also None: dockerd answers 404, not
        405, to a wrong method.
        """
        for route in self._routes.get(method.upper(), ()):
            match = route.regex.fullmatch(path)
            if match is not None:
                return route.handler, match.groupdict()
        return None
