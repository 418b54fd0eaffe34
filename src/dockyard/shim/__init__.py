"""The shim layer: one supervisor process per daemon exec root (`dockyard-shim`) owns every
container's stdio and logs, reaps the containers, records their exit status, and keeps
them alive while the daemon stops or restarts.

What the daemon may use: the clients and the protocol's names below. The shim process
itself is `dockyard.shim.main`; everything underscored is private. The names are loaded
on first use, so that the shim process imports none of the client's modules.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .client import AsyncShimClient, ShimClient, ShimStartError
    from .protocol import FrameDecoder, ShimError

__all__ = ["AsyncShimClient", "FrameDecoder", "ShimClient", "ShimError", "ShimStartError"]

_HOMES = {"AsyncShimClient": "client", "ShimClient": "client", "ShimStartError": "client",
          "FrameDecoder": "protocol", "ShimError": "protocol"}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
