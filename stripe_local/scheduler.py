"""Asynchronous state changes (refunds that settle or fail later), from durable ``scheduled`` rows."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from .core import AppState, Ctx
from .resources import refunds

logger = logging.getLogger("stripe_local.scheduler")

TRANSITIONS: dict[str, Callable[[Ctx, str], None]] = {
    "refund.succeed": refunds.settle,
    "refund.fail": refunds.fail,
}


class Scheduler:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stripe_local.scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                self.run_due()
            except Exception:
                logger.exception("scheduler.crashed")
            next_at = self.state.db.next_scheduled_at()
            timeout = 1.0 if next_at is None else min(max(next_at - time.time(), 0.005), 1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    def run_due(self, *, everything: bool = False) -> int:
        """Run due transitions, each in its own unit of work; ``everything`` ignores due times."""
        rows = self.state.db.due_scheduled(None if everything else time.time())
        for row_id, kind, object_id in rows:
            uow = self.state.db.begin()
            ctx = Ctx(self.state, uow, request_id=None, idempotency_key=None)
            try:
                TRANSITIONS[kind](ctx, object_id)
            except Exception:
                logger.exception("scheduler.transition.failed", extra={"kind": kind, "object": object_id})
                uow = self.state.db.begin()
                self.state.db.invalidate_cache()
            uow.execute("UPDATE scheduled SET done = 1 WHERE id = ?", (row_id,))
            uow.commit()
        if rows:
            self.state.wake_dispatcher()
        return len(rows)
