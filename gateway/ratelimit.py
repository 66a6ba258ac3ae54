"""Per-client rate limiting with the `limits` library (memory for one gateway, Redis for several)."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string


class ClientRateLimiter:
    def __init__(self, spec: str, storage_uri: str) -> None:
        self.items: list[RateLimitItem] = parse_many(spec)
        # redis:// lets several gateway replicas share the counters; redis-py is the client (limits' default
        # async Redis client, coredis 6, is not driven correctly by limits 5.8).
        options = {"implementation": "redispy"} if storage_uri.startswith(("redis://", "rediss://")) else {}
        # Sliding-window counter: O(1) per hit (a moving window keeps every hit), close to exact.
        self.limiter = SlidingWindowCounterRateLimiter(storage_from_string(f"async+{storage_uri}", **options))

    async def hit(self, client_key: str) -> int | None:
        """Count one request. Returns None when allowed, else the seconds to wait (for Retry-After)."""
        for item in self.items:
            if not await self.limiter.hit(item, "gateway", client_key):
                stats = await self.limiter.get_window_stats(item, "gateway", client_key)
                return max(1, math.ceil(stats.reset_time - time.time()))
        return None
