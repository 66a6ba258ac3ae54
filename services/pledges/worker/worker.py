"""The background worker every replica runs (a lifespan hook). It holds no state: the pledge rows are the work.

Each poll:
1. closures: active pledges of succeeded all-or-nothing campaigns become due for charging; pledges of failed
   or canceled campaigns turn to compensation;
2. sweeper: pledges left mid-step (their driver died: lease expired) are resumed from their persisted step,
   repeating the step's call with the same idempotency key, so it completes or compensates, never twice;
3. charge run: due pledges are charged off-session, rate-limited, one attempt key per attempt;
4. grace expiry: pledges whose charge kept failing past the grace period are dropped (card detached,
   capacity released);
5. Stripe events whose processing failed are processed again.

Rows are claimed by taking their lease with a compare-and-set (and ``FOR UPDATE SKIP LOCKED`` on PostgreSQL),
so several replicas share the work without doing any piece twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import and_, or_, select

from services.pledges.models import IN_PROGRESS, FundingModel, Pledge, PledgeStatus
from services.pledges.pledges.repository import PledgeRepository, lease_free
from services.pledges.pledges.saga import LeaseLost, PledgeSaga, StepUnavailable
from services.pledges.runtime import Runtime
from services.pledges.webhooks.service import webhook_service
from shared.db import utcnow

log = structlog.get_logger("pledges.worker")

RETRY_AFTER_UNAVAILABLE_SECONDS = 5.0
EVENT_RETRY_AFTER_SECONDS = 5.0


class RateLimiter:
    """Spaces calls ``1/rate`` seconds apart (per replica)."""

    def __init__(self, rate_per_second: float) -> None:
        self.interval = 1.0 / rate_per_second
        self._next = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)


@dataclass
class PollResult:
    scheduled: int = 0
    canceled: int = 0
    swept: int = 0
    charged: int = 0
    dropped: int = 0
    events: int = 0

    def any(self) -> bool:
        return any(vars(self).values())


class PledgeWorker:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.saga = PledgeSaga(runtime)
        self.limiter = RateLimiter(runtime.settings.charge_rate_per_second)
        self.lease = timedelta(seconds=runtime.settings.saga_lease_seconds)

    async def run(self) -> None:
        settings = self.runtime.settings
        while True:
            try:
                result = await self.run_once()
                if result.any():
                    log.info("worker.poll", **vars(result))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker.poll_failed")
            await asyncio.sleep(settings.worker_poll_seconds)

    async def run_once(self) -> PollResult:
        result = PollResult()
        result.scheduled, result.canceled = await self.mark_closures()
        result.swept = await self.sweep()
        result.charged = await self.charge_due()
        result.dropped = await self.drop_expired()
        result.events = await self.process_events()
        return result

    async def mark_closures(self) -> tuple[int, int]:
        now = utcnow()
        async with self.runtime.db.write_sessions() as session:
            repository = PledgeRepository(session)
            scheduled = await repository.schedule_charges(now)
            canceled = await repository.cancel_for_closed_campaigns(now)
            await session.commit()
        return scheduled, canceled

    async def _claim(
        self, condition: Any, statuses: frozenset[PledgeStatus], values: Callable[[Pledge], dict[str, Any]] | None
    ) -> list[Pledge]:
        """Claim up to a batch of pledges matching ``condition`` (lease free), applying ``values`` to each."""
        now = utcnow()
        token = uuid.uuid4()
        claimed: list[uuid.UUID] = []
        async with self.runtime.db.write_sessions() as session:
            repository = PledgeRepository(session)
            statement = (
                select(Pledge)
                .where(condition, lease_free(now))
                .order_by(Pledge.updated_at)
                .limit(self.runtime.settings.worker_batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                statement = statement.with_for_update(skip_locked=True)
            rows = list((await session.execute(statement)).scalars())
            for row in rows:
                extra = values(row) if values else None
                if await repository.claim(
                    row.id, statuses={row.status} & statuses, token=token, now=now, lease=self.lease, values=extra
                ):
                    claimed.append(row.id)
            pledges = [p for p in [await repository.fresh(i) for i in claimed] if p is not None]
            await session.commit()
        return pledges

    async def _drive_all(self, pledges: list[Pledge], before: Callable[[], Awaitable[None]] | None = None) -> int:
        semaphore = asyncio.Semaphore(self.runtime.settings.worker_concurrency)

        async def one(pledge: Pledge) -> bool:
            async with semaphore:
                if before is not None:
                    await before()
                try:
                    await self.saga.drive(pledge)
                    return True
                except StepUnavailable as exc:
                    log.warning("worker.step_unavailable", pledge_id=str(pledge.id), upstream=exc.upstream)
                    await self.saga.release_lease(pledge, retry_in=RETRY_AFTER_UNAVAILABLE_SECONDS)
                except LeaseLost:
                    pass
                except Exception:
                    log.exception("worker.drive_failed", pledge_id=str(pledge.id))
                    await self.saga.release_lease(pledge, retry_in=RETRY_AFTER_UNAVAILABLE_SECONDS)
                return False

        results = await asyncio.gather(*(one(p) for p in pledges))
        return sum(results)

    async def sweep(self) -> int:
        """Resume pledges whose driver died mid-step (their lease expired)."""
        pledges = await self._claim(Pledge.status.in_(IN_PROGRESS), IN_PROGRESS, None)
        for pledge in pledges:
            log.info("sweeper.resuming", pledge_id=str(pledge.id), status=pledge.status.value)
        return await self._drive_all(pledges)

    async def charge_due(self) -> int:
        now = utcnow()
        statuses = frozenset({PledgeStatus.ACTIVE, PledgeStatus.PAYMENT_FAILED})
        condition = and_(
            Pledge.status.in_(statuses),
            Pledge.funding_model == FundingModel.ALL_OR_NOTHING,
            Pledge.charge_due_at <= now,
            Pledge.stripe_payment_method_id.is_not(None),
            or_(Pledge.grace_until.is_(None), Pledge.grace_until > now),
        )

        def attempt(row: Pledge) -> dict[str, Any]:
            n = row.charge_attempts + 1
            # A new key per attempt: a failed attempt's key would replay the failure; a crashed attempt is
            # resumed by the sweeper with its stored key, so no attempt is ever made twice.
            return {
                "status": PledgeStatus.CHARGING,
                "charge_attempts": n,
                "payment_intent_key": f"pledge:{row.id}:charge:{n}",
                "charge_due_at": None,
            }

        pledges = await self._claim(condition, statuses, attempt)
        return await self._drive_all(pledges, before=self.limiter.acquire)

    async def drop_expired(self) -> int:
        now = utcnow()
        condition = and_(Pledge.status == PledgeStatus.PAYMENT_FAILED, Pledge.grace_until <= now)
        pledges = await self._claim(
            condition,
            frozenset({PledgeStatus.PAYMENT_FAILED}),
            lambda _row: {
                "status": PledgeStatus.COMPENSATING,
                "final_status": PledgeStatus.DROPPED,
                "cancel_reason": "no_successful_charge_within_grace_period",
            },
        )
        return await self._drive_all(pledges)

    async def process_events(self) -> int:
        older_than = utcnow() - timedelta(seconds=EVENT_RETRY_AFTER_SECONDS)
        async with self.runtime.db.read_sessions() as session:
            event_ids = await webhook_service.pending(session, self.runtime.settings.worker_batch_size, older_than)
        processed = 0
        for event_id in event_ids:
            processed += int(await self.process_event(event_id))
        return processed

    async def process_event(self, event_id: str) -> bool:
        """One stored Stripe event in its own transaction; a failure is recorded on the event in another."""
        db = self.runtime.db
        try:
            async with db.write_sessions() as session:
                processed = await webhook_service.process(session, event_id)
                await session.commit()
            return processed
        except Exception as exc:
            log.exception("webhook.processing_failed", event_id=event_id)
            async with db.write_sessions() as session:
                await webhook_service.record_failure(session, event_id, exc)
                await session.commit()
            return False
