"""Settings of the API server that clients can observe."""

from __future__ import annotations

from dataclasses import dataclass

from .. import __version__
from ._versions import API_VERSION, MIN_API_VERSION


@dataclass(frozen=True)
class ServerConfig:
    """What the server announces and accepts.

    `api_version` is the newest version served and the one assumed when a path has no
    `/vX.Y` prefix; it is also what /_ping reports, which the docker CLI and docker-py
    use to negotiate down to it.
    """

    api_version: str = API_VERSION
    min_api_version: str = MIN_API_VERSION
    # The `Server` header: dockerd sends "Docker/28.2.2 (linux)".
    server_version: str = __version__
    experimental: bool = False
    # "1" is the classic builder: the docker CLI then uses the legacy POST /build
    # instead of BuildKit's gRPC session, which Dockyard does not speak.
    builder_version: str = "1"
    swarm: str = "inactive"
    # How long running requests get to finish when the server shuts down.
    shutdown_timeout: float = 10.0
    # Largest request head accepted (Go's http.DefaultMaxHeaderBytes): X-Registry-Config
    # for a build can carry credentials for many registries.
    max_header_size: int = 1 << 20

    @property
    def server_header(self) -> str:
        return f"Dockyard/{self.server_version} (linux)"
