"""Requests per client address, limited with a token bucket (as public registries limit
anonymous pulls): over the limit, 429 TOOMANYREQUESTS with Retry-After."""

from __future__ import annotations

import math
import time

from ._errors import RegistryError

# Buckets untouched this long are full again and are forgotten.
_FORGET_AFTER = 600.0


class RateLimiter:
    def __init__(self, rate: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("the rate limit must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}   # address -> (tokens, when)
        self._swept = time.monotonic()

    def check(self, address: str, now: float | None = None) -> None:
        """Take one token for `address`, or raise TOOMANYREQUESTS."""
        now = time.monotonic() if now is None else now
        tokens, when = self._buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - when) * self.rate)
        if tokens < 1:
            self._buckets[address] = (tokens, now)
            wait = math.ceil((1 - tokens) / self.rate)
            raise RegistryError("TOOMANYREQUESTS", headers=[("Retry-After", str(wait))],
                                detail={"limit": f"{self.rate:g} requests per second"})
        self._buckets[address] = (tokens - 1, now)
        if now - self._swept > _FORGET_AFTER:
            self._swept = now
            self._buckets = {key: value for key, value in self._buckets.items()
                             if now - value[1] < _FORGET_AFTER}
