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
    # And the limit is still used: the fleet hands out slots at the rate (less the 2% spacing). A slot the
    # event loop woke up too late for is given up, not sent late, so on a loaded machine fewer calls go out
    # than slots were handed out; those are counted, and must stay the exception.
    span = sends[-1] - sends[0]
    granted = sum(limiter.granted for limiter in replicas)
    dropped = sum(limiter.dropped for limiter in replicas)
    assert granted == len(sends)
    assert (granted + dropped) / span >= 0.9 * rate, f"{granted} sent, {dropped} dropped in {span:.2f} s"
    assert dropped < granted / 2, f"{dropped} slots dropped for {granted} sent"


async def test_a_blocked_event_loop_drops_its_late_slots_instead_of_bursting(database_url: str) -> None:
    rate = 50.0
    db = Database(database_url)
    limiter = FleetRateLimiter(db, name="late-test", rate_per_second=rate, horizon_seconds=0.25)
    await limiter.setup()
    sends: list[float] = []
    stop_at = time.time() + 2.0

    async def caller() -> None:
        while time.time() < stop_at:
            await limiter.acquire()
            sends.append(time.time())

    async def hog() -> None:  # blocks the loop for 3 slots' worth, 5 times a second
        while time.time() < stop_at:
            await asyncio.sleep(0.14)
            time.sleep(0.06)

    try:
        await asyncio.gather(hog(), *(caller() for _ in range(20)))
    finally:
        await db.dispose()
    sends.sort()
    busiest = max(bisect.bisect_left(sends, t + 1.0) - i for i, t in enumerate(sends))
    assert busiest <= rate, f"{busiest} calls in one second at a limit of {rate:.0f}/s"
    assert limiter.dropped > 0  # the slots that fell inside a block were given up, not sent in a burst after it
    assert limiter.granted == len(sends) > rate  # and the others went out
