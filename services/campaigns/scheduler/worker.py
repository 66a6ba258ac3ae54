"""The background loop every replica runs (a lifespan hook). It holds no state: the database decides what
is due and who gets each piece of work, so replicas can start, stop or die at any moment. It owns the
transactions of its steps: one per campaign closed, and the reservation sweep."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI

from services.campaigns.config import Settings
from services.campaigns.reservations.service import reservation_service
from services.campaigns.reservations.transactions import one_statement_per_transaction
from services.campaigns.scheduler.service import scheduler_service
from shared.db import Database

log = structlog.get_logger("campaigns.scheduler")


async def run_once(db: Database, settings: Settings) -> tuple[int, int]:
    """One poll: expire overdue reservations, then close due campaigns. Returns (expired, closed)."""
    async with db.read_sessions() as session:
        overdue, due = await scheduler_service.due_work(session, settings)
    expired = 0
    if overdue:
        async with db.write_sessions() as session:
            # Each expiry is one atomic statement on PostgreSQL, committed at once: the sweep never holds a
            # hot campaign row for the rest of the batch. On SQLite the batch is one short transaction.
            await one_statement_per_transaction(session)
            expired = await reservation_service.expire_overdue(session, limit=settings.scheduler_batch_size)
            await session.commit()
    closed = 0
    for campaign_id in due:
        async with db.write_sessions() as session:
            if await scheduler_service.close_campaign(session, campaign_id) is not None:
                closed += 1
            await session.commit()
    return expired, closed


async def run_scheduler(db: Database, settings: Settings) -> None:
    while True:
        try:
            expired, closed = await run_once(db, settings)
            if expired or closed:
                log.info("scheduler.poll", reservations_expired=expired, campaigns_closed=closed)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduler.poll_failed")
        await asyncio.sleep(settings.scheduler_poll_seconds)


@contextlib.asynccontextmanager
async def deadline_scheduler(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if not settings.scheduler_enabled:
        yield
        return
    task = asyncio.create_task(run_scheduler(app.state.db, settings), name="campaigns-scheduler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
