"""The background loop every replica runs (a lifespan hook). It holds no state: the database decides what
is due and who gets each piece of work, so replicas can start, stop or die at any moment."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from fastapi import FastAPI

from services.campaigns.config import Settings
from services.campaigns.scheduler.service import scheduler_service
from shared.db import Database

log = structlog.get_logger("campaigns.scheduler")


async def run_scheduler(db: Database, settings: Settings) -> None:
    while True:
        try:
            expired, closed = await scheduler_service.run_once(db, settings)
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
