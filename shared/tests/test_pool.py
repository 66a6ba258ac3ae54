"""shared.pool: connections go to waiters in arrival order, and a waiter that gives up never takes one along."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from shared.db import create_engine
from shared.pool import FairAsyncAdaptedQueuePool
from shared.testing import BACKEND


async def test_a_returned_connection_goes_to_the_oldest_waiter_not_to_a_newcomer(shared_database_url: str) -> None:
    engine = create_engine(shared_database_url, pool_size=1)
    assert isinstance(engine.pool, FairAsyncAdaptedQueuePool)
    order: list[str] = []
    held = await engine.connect()

    async def waiter() -> None:
        conn = await engine.connect()
        order.append("waiter")
        await asyncio.sleep(0.02)
        await conn.close()

    waiting = asyncio.create_task(waiter())
    await asyncio.sleep(0.05)  # it has asked and is waiting
    await held.close()
    newcomer = await engine.connect()  # asks the moment the connection comes back, before the waiter has run
    order.append("newcomer")
    await newcomer.close()
    await waiting
    await engine.dispose()

    if BACKEND == "postgresql":
        assert order == ["waiter", "newcomer"]  # SQLAlchemy's own pool: ["newcomer", "waiter"]
    else:  # aiosqlite closes in a thread: the waiter runs meanwhile whatever the pool does
        assert sorted(order) == ["newcomer", "waiter"]


async def test_a_waiter_that_times_out_or_is_cancelled_leaves_the_pool_whole(shared_database_url: str) -> None:
    engine = create_engine(shared_database_url, pool_size=1, pool_timeout=0.1)
    held = await engine.connect()
    with pytest.raises(sa_exc.TimeoutError):
        await engine.connect()

    async def waiter() -> None:
        conn = await engine.connect()
        await conn.close()

    cancelled = asyncio.create_task(waiter())
    await asyncio.sleep(0.02)
    await held.close()  # handed to the waiter...
    cancelled.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await cancelled

    async with engine.connect() as conn:  # the connection was passed on, not lost with the waiter
        assert await conn.scalar(text("SELECT 1")) == 1
    assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    await engine.dispose()
