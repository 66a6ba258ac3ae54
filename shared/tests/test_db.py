"""shared.db: what a read session and the end of a unit of work guarantee, on the real database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, func, select, text, update

from shared.db import Database
from shared.testing import BACKEND
from shared.tests.conftest import Widget


@pytest.fixture
async def db(shared_database_url: str) -> AsyncIterator[Database]:
    database = Database(shared_database_url, pool_size=3)
    async with database.write_sessions() as session:
        session.add(Widget(name="a", price_amount=100, currency="USD"))
        await session.commit()
    yield database
    await database.dispose()


async def test_a_read_session_shows_one_moment(db: Database) -> None:
    """Two reads in one read session agree even when a write commits between them (a pledge read before its
    refunds must not show a refund that its refunded amount does not count yet)."""
    price = select(Widget.price_amount).where(Widget.name == "a")
    async with db.read_sessions() as reader:
        before = await reader.scalar(price)
        async with db.write_sessions() as writer:
            await writer.execute(update(Widget).values(price_amount=Widget.price_amount + 1))
            writer.add(Widget(name="b", price_amount=50, currency="USD"))
            await writer.commit()
        again = await reader.scalar(price)
        rows = await reader.scalar(select(func.count()).select_from(Widget))
    async with db.read_sessions() as later:
        after = (await later.scalar(price), await later.scalar(select(func.count()).select_from(Widget)))

    assert (before, again, rows, after) == (100, 100, 1, (101, 2))


class LoopTurns:
    """Counts the event loop's turns while it runs."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def _spin(self) -> None:
        while True:
            self.count += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> LoopTurns:
        self._task = asyncio.create_task(self._spin())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


@pytest.mark.skipif(BACKEND != "postgresql", reason="aiosqlite makes every call, a close too, in a thread of its own")
async def test_ending_a_unit_of_work_returns_its_connection_without_waiting_for_the_event_loop(db: Database) -> None:
    """Under load the loop's queue is long: a connection that waits for a turn of the loop to go back to the
    pool is held that long for nothing (SQLAlchemy's own exit closes in a task of its own)."""
    pool = db.engine.pool
    async with LoopTurns() as turns:
        async with db.write_sessions() as session:
            session.add(Widget(name="c", price_amount=1, currency="USD"))
            await session.commit()
            turns_before_exit = turns.count
        session_exit = (turns.count - turns_before_exit, pool.checkedout())  # type: ignore[attr-defined]

        async with db.one_statement() as conn:
            await conn.execute(update(Widget).where(Widget.name == "c").values(price_amount=2))
            turns_before_exit = turns.count
        statement_exit = (turns.count - turns_before_exit, pool.checkedout())  # type: ignore[attr-defined]

    assert session_exit == (0, 0)
    assert statement_exit == (0, 0)
    async with db.read_sessions() as reader:
        assert await reader.scalar(select(Widget.price_amount).where(Widget.name == "c")) == 2


async def test_a_unit_of_work_cancelled_twice_mid_statement_leaves_no_task_behind(db: Database) -> None:
    """A worker stopped while a statement waits (``gather`` cancels a loop, then its owner cancels it again
    while SQLAlchemy drops the interrupted connection) must leave nothing running. With aiosqlite as it
    comes, the connection's graceful close was left waiting forever on the thread the forced close had just
    stopped: the event loop could then never close (a service stuck on shutdown, a test run stuck in
    teardown)."""
    holder = db.write_sessions()
    await holder.execute(update(Widget).values(price_amount=Widget.price_amount + 1))  # holds the lock

    async def blocked_write() -> None:
        async with db.write_sessions() as session:
            await session.execute(update(Widget).values(price_amount=Widget.price_amount + 2))
            await session.commit()

    task = asyncio.create_task(blocked_write())
    await asyncio.sleep(0.3)  # waiting for the lock
    task.cancel()
    await asyncio.sleep(0)  # the first cancellation reaches the driver; SQLAlchemy starts dropping the connection
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await holder.rollback()
    await holder.close()
    others = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    _, pending = await asyncio.wait(others, timeout=3) if others else (set(), set())
    for leftover in pending:  # do not leave them to hang the event loop's close
        leftover.cancel()
    assert not pending, [repr(t) for t in pending]
    async with db.read_sessions() as session:  # and the database is usable
        assert await session.scalar(select(Widget.price_amount).where(Widget.name == "a")) == 100


async def test_json_columns_are_written_with_orjson(shared_database_url: str) -> None:
    """What the services store in JSON columns (a Stripe event per webhook, the accepted terms per pledge) is
    encoded by orjson: UUIDs and datetimes as strings, non-string keys as strings (as the json module does),
    text as UTF-8 rather than escapes. The json module would refuse the UUID."""
    metadata = MetaData()
    documents = Table("json_documents", metadata, Column("id", Integer, primary_key=True), Column("body", JSON))
    pledge_id = uuid.uuid4()
    database = Database(shared_database_url, pool_size=1)
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            body = {"title": "Zoë's kit", 7: "seven", "pledge_id": pledge_id, "at": datetime(2026, 12, 7, tzinfo=UTC)}
            await conn.execute(documents.insert().values(id=1, body=body))
            stored = await conn.scalar(select(documents.c.body))
            raw = await conn.scalar(text("SELECT CAST(body AS TEXT) FROM json_documents"))
    finally:
        await database.dispose()
    assert stored == {
        "title": "Zoë's kit",
        "7": "seven",
        "pledge_id": str(pledge_id),
        "at": "2026-12-07T00:00:00+00:00",
    }
    assert "Zoë" in raw
