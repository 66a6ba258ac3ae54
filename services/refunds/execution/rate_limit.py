"""A rate limit shared by every replica, kept in the service's own database (nothing else to run).

The algorithm is GCRA (the generic cell rate algorithm, https://brandur.org/rate-limiting): one row holds the
*theoretical arrival time* (TAT) of the next request. A replica reserves ``k`` send slots with one conditional
UPDATE::

    UPDATE rate_limits SET tat = max(tat, now) + k * interval
    WHERE name = :name AND tat <= now + horizon RETURNING tat

and gets the slots ``start, start + interval, ...`` (``start`` = the returned TAT - k * interval); each request
waits for its slot. Because every slot of the fleet comes from the same row, requests are spaced exactly
``interval`` apart across all replicas: no fixed window whose edges let twice the rate through, no burst beyond
the configured rate. The ``horizon`` bounds how far ahead slots are handed out, so a replica that dies loses at
most a fraction of a second of capacity (never exceeds it). The UPDATE is atomic on both backends (SQLite's
single writer; PostgreSQL's row lock), so concurrent replicas never receive the same slot.

Why not ``limits`` (Redis)? It needs a Redis the embedded default does not have, and its moving window
answers "allowed now?" only: callers poll, and spacing is not guaranteed. A slot reservation costs one short
write per ``k`` requests (a few per second at Stripe's rates) and needs nothing but our database.

Clocks: ``now`` is this replica's wall clock; replicas must be NTP-synchronised (skew of a few ms shifts a
slot by that much, which Stripe's own bucket - a burst equal to the rate - absorbs).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import structlog
from sqlalchemy import func, update

from services.refunds.models import RateLimit
from shared.db import Database, insert_for

log = structlog.get_logger("refunds.rate_limit")

STRIPE_LIMIT = "stripe"
# A slot older than this (the loop was busy) is dropped rather than used late, and slots are spaced
# (1 + LATE) / rate apart instead of 1 / rate: a call goes out within LATE of its slot, so the calls of any
# 1-second window come from slots in a span of 1 + LATE seconds, which holds at most `rate` of them. Never
# above the limit in any window, fleet-wide, for LATE (2%) of the capacity.
STALE_SLOT_SECONDS = 0.02


class FleetRateLimiter:
    def __init__(self, db: Database, *, name: str, rate_per_second: float, horizon_seconds: float) -> None:
        self.db = db
        self.name = name
        self.rate = rate_per_second
        self.horizon_us = int(horizon_seconds * 1_000_000)
        self.interval_us = int(1_000_000 * (1 + STALE_SLOT_SECONDS) / rate_per_second) + 1 if rate_per_second > 0 else 0
        self.max_chunk = max(1, int(rate_per_second * horizon_seconds))
        self._slots: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._waiting = 0
        self.granted = 0
        self.dropped = 0  # slots given up because the loop woke up too late for them
        self.reservations = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    async def setup(self) -> None:
        if not self.enabled:
            return
        async with self.db.write_sessions() as session:
            insert = insert_for(session)
            await session.execute(
                insert(RateLimit).values(name=self.name, tat_us=0).on_conflict_do_nothing(index_elements=["name"])
            )
            await session.commit()

    async def acquire(self) -> None:
        """Wait for this replica's next slot (reserving more from the shared row when none is left). Returns
        within STALE_SLOT_SECONDS of a slot; a slot the loop woke up too late for is given up for the next."""
        if not self.enabled:
            return
        self._waiting += 1
        try:
            while True:
                slot = await self._next_slot()
                delay = slot - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                if time.time() <= slot + STALE_SLOT_SECONDS:
                    break
                self.dropped += 1
        finally:
            self._waiting -= 1
        self.granted += 1

    async def _next_slot(self) -> float:
        while True:
            async with self._lock:
                now = time.time()
                while self._slots and self._slots[0] < now - STALE_SLOT_SECONDS:
                    self._slots.popleft()
                    self.dropped += 1
                if not self._slots:
                    await self._reserve(min(self.max_chunk, max(1, self._waiting)))
                if self._slots:
                    return self._slots.popleft()
            # The fleet has reserved the whole horizon: wait for it to move on.
            await asyncio.sleep(max(self.interval_us, self.horizon_us // 4) / 1_000_000)

    async def _reserve(self, count: int) -> None:
        now_us = int(time.time() * 1_000_000)
        async with self.db.write_sessions() as session:
            greatest = func.max if session.get_bind().dialect.name == "sqlite" else func.greatest
            result = await session.execute(
                update(RateLimit)
                .where(RateLimit.name == self.name, RateLimit.tat_us <= now_us + self.horizon_us)
                .values(tat_us=greatest(RateLimit.tat_us, now_us) + count * self.interval_us)
                .returning(RateLimit.tat_us)
            )
            tat = result.scalar_one_or_none()
            await session.commit()
        if tat is None:
            return
        self.reservations += 1
        start = int(tat) - count * self.interval_us
        self._slots.extend((start + i * self.interval_us) / 1_000_000 for i in range(count))
