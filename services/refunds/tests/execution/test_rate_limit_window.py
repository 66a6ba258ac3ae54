"""The fleet rate limit never lets more than `rate` calls into any 1-second window, across replicas, even
when the event loop is late (late slots are dropped, slots are spaced with that lateness in hand)."""

from __future__ import annotations

import asyncio
import bisect
import random
import time

from services.refunds.execution.rate_limit import FleetRateLimiter
from shared.db import Database


async def test_no_one_second_window_holds_more_than_the_rate_across_two_replicas(database_url: str) -> None:
    rate = 50.0
    db = Database(database_url)
    replicas = [FleetRateLimiter(db, name="window-test", rate_per_second=rate, horizon_seconds=0.25) for _ in (1, 2)]
    await replicas[0].setup()
    sends: list[float] = []
    stop_at = time.time() + 3.0
    jitter = random.Random(7)

    async def caller(limiter: FleetRateLimiter) -> None:
        while time.time() < stop_at:
            await limiter.acquire()
            sends.append(time.time())
            await asyncio.sleep(jitter.uniform(0, 0.03))  # a busy loop makes some calls late

    try:
        await asyncio.gather(*(caller(limiter) for limiter in replicas for _ in range(20)))
    finally:
        await db.dispose()
    sends.sort()
    busiest = max(bisect.bisect_left(sends, t + 1.0) - i for i, t in enumerate(sends))
    assert busiest <= rate, f"{busiest} calls in one second at a limit of {rate:.0f}/s"
    achieved = len(sends) / (sends[-1] - sends[0])
    assert achieved >= 0.9 * rate, f"only {achieved:.1f}/s"  # and the limit is still used
