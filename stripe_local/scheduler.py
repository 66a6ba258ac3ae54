"""Asynchronous state changes (refunds that settle or fail later), from durable ``scheduled`` rows."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .core import AppState, Ctx
from .resources import refunds
from .worker import BackgroundWorker

logger = logging.getLogger("stripe_local.scheduler")

TRANSITIONS: dict[str, Callable[[Ctx, str], None]] = {
    "refund.succeed": refunds.settle,
    "refund.fail": refunds.fail,
}


class Scheduler(BackgroundWorker):
    name = "scheduler"

    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state

    async def tick(self) -> None:
        self.run_due()

    def idle_timeout(self) -> float:
        next_at = self.state.db.next_scheduled_at()
        return 1.0 if next_at is None else min(max(next_at - time.time(), 0.005), 1.0)

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
