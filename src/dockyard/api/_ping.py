"""GET and HEAD /_ping: the handshake every client makes before anything else.

Clients read the headers, not just the "OK": API-Version to negotiate their version,
Builder-Version to choose between BuildKit and the classic builder, Swarm and OSType
for feature detection.
"""

from __future__ import annotations

from ._config import ServerConfig
from ._request import Request
from ._response import Response
from ._router import Router


def ping_router(config: ServerConfig) -> Router:
    """A router serving /_ping with the headers `config` describes."""
    headers = [
        ("Builder-Version", config.builder_version),
        ("Cache-Control", "no-cache, no-store, must-revalidate"),
        ("Pragma", "no-cache"),
        ("Swarm", config.swarm),
    ]

    async def ping(request: Request) -> Response:
        # dockerd writes no body for HEAD and says so with Content-Length: 0.
        body = b"" if request.method == "HEAD" else b"OK"
        return Response(body=body, content_type="text/plain; charset=utf-8",
                        headers=headers)

    router = Router()
    router.add("GET", "/_ping", ping)
    router.add("HEAD", "/_ping", ping)
    return router
