"""All SQL of the workers: claims under a lease, outcomes fenced by that lease, reports, batch completion.

Every statement is short and no transaction is ever open while Stripe or the pledges service is called.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import bindparam, exists, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from services.refunds.batches.repository import LedgerRepository, RefundBatchRepository
from services.refunds.models import BatchKind, BatchStatus, ItemAction, ItemStatus, RefundBatch, RefundItem
from shared.db import table_of, utcnow

ITEMS = table_of(RefundItem)


@dataclass(frozen=True, slots=True)
class RunningBatch:
    id: uuid.UUID
    reason: str
    stripe_reason: str
    kind: BatchKind = BatchKind.BATCH

    @property
    def reports_failures(self) -> bool:
        """A backer's refund is already in their pledge's history (as pending): pledges must hear how it ended,
        even when no refund exists at Stripe (refused, or over the ledger)."""
        return self.kind is BatchKind.BACKER


@dataclass(slots=True)
class ClaimedItem:
    id: uuid.UUID
    batch_id: uuid.UUID
    campaign_id: uuid.UUID
    pledge_id: uuid.UUID
    action: ItemAction
    currency: str
    amount: int
    payment_intent: str | None
    idempotency_key: str
    previous_attempts: int  # claims before this one: a call may have reached Stripe
    first_attempted_at: datetime
    reports_failures: bool = False  # see RunningBatch.reports_failures


@dataclass(slots=True)
class Outcome:
    """What became of a claimed item. ``status`` None hands it back to the queue for a later attempt."""

    item: ClaimedItem
    status: ItemStatus | None
    stripe_refund_id: str | None = None
    stripe_status: str | None = None
    failure_code: str | None = None
    failure_reason: str | None = None
    follow_up_reason: str | None = None
    release_ledger: bool = False  # no refund exists: the commitment goes back to the pledge's ledger
    may_have_called: bool = True  # False: nothing left this process for the item (no reconcile needed)
    error: str | None = None
    retry_after: float = 0.0

    @property
    def report_due(self) -> bool:
        if self.stripe_refund_id is not None:
            return True
        return self.item.reports_failures and self.status is ItemStatus.FAILED


@dataclass(frozen=True, slots=True)
class ReportTask:
    id: uuid.UUID
    batch_id: uuid.UUID
    pledge_id: uuid.UUID
    status: ItemStatus
    stripe_refund_id: str | None  # None only for a backer's refund that failed before reaching Stripe
    amount: int
    currency: str
    failure_reason: str | None


class ExecutionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    async def running_batches(self) -> list[RunningBatch]:
        rows = await self.session.execute(
            select(RefundBatch.id, RefundBatch.reason, RefundBatch.stripe_reason, RefundBatch.kind).where(
                RefundBatch.status == BatchStatus.RUNNING
            )
        )
        return [RunningBatch(*row) for row in rows.all()]

    async def claim(
        self, batch_id: uuid.UUID, owner: str, limit: int, lease: timedelta, *, reports_failures: bool = False
    ) -> tuple[list[ClaimedItem], list[uuid.UUID]]:
        """Take up to ``limit`` due items of a batch under a lease. Returns the claimed items and the ids of
        items that failed at once because their pledge's ledger has no room left for them."""
        now = utcnow()
        statement = (
            select(
                RefundItem.id,
                RefundItem.campaign_id,
                RefundItem.pledge_id,
                RefundItem.action,
                RefundItem.currency,
                RefundItem.amount,
                RefundItem.stripe_payment_intent_id,
                RefundItem.idempotency_key,
                RefundItem.attempts,
                RefundItem.first_attempted_at,
                RefundItem.ledger_reserved,
            )
            .where(
                RefundItem.status == ItemStatus.QUEUED,
                RefundItem.batch_id == batch_id,
                RefundItem.next_attempt_at <= now,
                or_(RefundItem.lease_expires_at.is_(None), RefundItem.lease_expires_at < now),
            )
            .order_by(RefundItem.seq)
            .limit(limit)
        )
        if self.postgres:
            statement = statement.with_for_update(skip_locked=True)
        rows = (await self.session.execute(statement)).all()
        if not rows:
            return [], []
        await self.session.execute(
            update(RefundItem)
            .where(RefundItem.id.in_([r.id for r in rows]))
            .values(
                lease_owner=owner,
                lease_expires_at=now + lease,
                attempts=RefundItem.attempts + 1,
                first_attempted_at=func.coalesce(RefundItem.first_attempted_at, now),
                last_attempted_at=now,
                updated_at=now,
            )
        )
        to_reserve = [r.id for r in rows if r.action is ItemAction.REFUND and not r.ledger_reserved]
        reserved = set(await LedgerRepository(self.session).reserve_items(to_reserve)) if to_reserve else set()
        refused = [item_id for item_id in to_reserve if item_id not in reserved]
        claimed = [
            ClaimedItem(
                id=row.id,
                batch_id=batch_id,
                campaign_id=row.campaign_id,
                pledge_id=row.pledge_id,
                action=row.action,
                currency=row.currency,
                amount=row.amount,
                payment_intent=row.stripe_payment_intent_id,
                idempotency_key=row.idempotency_key,
                previous_attempts=row.attempts,
                first_attempted_at=row.first_attempted_at or now,
                reports_failures=reports_failures,
            )
            for row in rows
            if row.id not in refused
        ]
        if reserved:
            await self.session.execute(
                update(RefundItem).where(RefundItem.id.in_(list(reserved))).values(ledger_reserved=True)
            )
        if refused:
            await self.session.execute(
                update(RefundItem)
                .where(RefundItem.id.in_(refused))
                .values(
                    status=ItemStatus.FAILED,
                    failure_code="exceeds_refundable",
                    failure_reason="Refunds committed for this pledge across batches would exceed what was charged.",
                    report_due=reports_failures,
                    finished_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    attempts=RefundItem.attempts - 1,
                )
            )
        return claimed, refused

    async def extend_leases(self, owner: str, item_ids: Sequence[uuid.UUID], lease: timedelta) -> int:
        """Keep holding items this worker still has in hand (queued locally, waiting for a rate-limited turn, in
        flight): their lease is renewed while the worker lives, so no claim can take them in the meantime."""
        if not item_ids:
            return 0
        result = cast(
            "CursorResult[Any]",
            await self.session.execute(
                update(RefundItem)
                .where(
                    RefundItem.id.in_(list(item_ids)),
                    RefundItem.lease_owner == owner,
                    RefundItem.status == ItemStatus.QUEUED,
                )
                .values(lease_expires_at=utcnow() + lease)
            ),
        )
        return int(result.rowcount)

    async def record(self, owner: str, outcomes: Sequence[Outcome]) -> int:
        """Write outcomes, each fenced by this worker's lease (a worker that lost its lease writes nothing).
        Returns how many items were written."""
        now = utcnow()
        written = 0
        finals = [o for o in outcomes if o.status is not None and not o.release_ledger]
        if finals:
            statement = (
                ITEMS.update()
                .where(
                    ITEMS.c.id == bindparam("b_id"),
                    ITEMS.c.lease_owner == owner,
                    ITEMS.c.status == ItemStatus.QUEUED.value,
                )
                .values(
                    **{column: bindparam(f"b_{column}") for column in FINAL_COLUMNS},
                    finished_at=now,
                    updated_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    last_error=None,
                )
            )
            params = [{"b_id": o.item.id} | {f"b_{k}": v for k, v in _final_values(o).items()} for o in finals]
            updated = cast("CursorResult[Any]", await self.session.execute(statement, params))
            written += max(0, updated.rowcount or 0)
        ledger = LedgerRepository(self.session)
        for outcome in outcomes:
            if outcome.status is not None and outcome.release_ledger:
                result = await self.session.execute(
                    ITEMS.update()
                    .where(
                        ITEMS.c.id == outcome.item.id,
                        ITEMS.c.lease_owner == owner,
                        ITEMS.c.status == ItemStatus.QUEUED.value,
                    )
                    .values(
                        **_final_values(outcome),
                        ledger_reserved=False,
                        finished_at=now,
                        updated_at=now,
                        lease_owner=None,
                        lease_expires_at=None,
                        last_error=None,
                    )
                    .returning(ITEMS.c.ledger_reserved)
                )
                if result.first() is not None:
                    written += 1
                    if outcome.item.action is ItemAction.REFUND:
                        await ledger.release([(outcome.item.pledge_id, outcome.item.amount)])
        retries = [o for o in outcomes if o.status is None]
        if retries:
            statement = (
                ITEMS.update()
                .where(ITEMS.c.id == bindparam("b_id"), ITEMS.c.lease_owner == owner)
                .values(
                    lease_owner=None,
                    lease_expires_at=None,
                    next_attempt_at=bindparam("b_next"),
                    last_error=bindparam("b_error"),
                    attempts=ITEMS.c.attempts - bindparam("b_uncalled"),
                    updated_at=now,
                )
            )
            await self.session.execute(
                statement,
                [
                    {
                        "b_id": o.item.id,
                        "b_next": now + timedelta(seconds=o.retry_after),
                        "b_error": (o.error or "")[:500] or None,
                        "b_uncalled": 0 if o.may_have_called else 1,
                    }
                    for o in retries
                ],
            )
        return written

    async def complete_drained(self, batch_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Running batches with nothing left queued become `completed` (exactly one replica wins each)."""
        if not batch_ids:
            return []
        now = utcnow()
        queued = exists().where(RefundItem.batch_id == RefundBatch.id, RefundItem.status == ItemStatus.QUEUED)
        result = await self.session.execute(
            update(RefundBatch)
            .where(RefundBatch.id.in_(list(batch_ids)), RefundBatch.status == BatchStatus.RUNNING, ~queued)
            .values(status=BatchStatus.COMPLETED, completed_at=now, updated_at=now)
            .returning(RefundBatch.id)
        )
        return list(result.scalars())

    async def cancel_leftovers(self) -> int:
        """Queued items of canceled batches whose lease is free (handed back or expired) become `canceled`."""
        now = utcnow()
        batch_ids = (
            await self.session.execute(
                select(RefundBatch.id).where(
                    RefundBatch.status == BatchStatus.CANCELED,
                    exists().where(
                        RefundItem.batch_id == RefundBatch.id,
                        RefundItem.status == ItemStatus.QUEUED,
                        or_(RefundItem.lease_expires_at.is_(None), RefundItem.lease_expires_at < now),
                    ),
                )
            )
        ).scalars()
        repository = RefundBatchRepository(self.session)
        return sum([await repository.cancel_unclaimed_items(batch_id) for batch_id in list(batch_ids)])

    async def claim_stale_pending(self, older_than: datetime, limit: int) -> list[tuple[uuid.UUID, str]]:
        """Pending refunds nobody heard about for a while (a webhook lost or late): take some to ask Stripe.
        Touching ``updated_at`` is the claim, so another replica does not ask about the same ones."""
        rows = (
            await self.session.execute(
                select(RefundItem.id, RefundItem.stripe_refund_id)
                .where(
                    RefundItem.status == ItemStatus.PENDING,
                    RefundItem.updated_at < older_than,
                    RefundItem.stripe_refund_id.is_not(None),
                )
                .limit(limit)
            )
        ).all()
        if not rows:
            return []
        claimed = await self.session.execute(
            update(RefundItem)
            .where(RefundItem.id.in_([r.id for r in rows]), RefundItem.updated_at < older_than)
            .values(updated_at=utcnow())
            .returning(RefundItem.id)
        )
        taken = set(claimed.scalars())
        return [(r.id, r.stripe_refund_id) for r in rows if r.id in taken]

    async def claim_reports(self, limit: int, lease: timedelta) -> list[ReportTask]:
        now = utcnow()
        statement = (
            select(
                RefundItem.id,
                RefundItem.batch_id,
                RefundItem.pledge_id,
                RefundItem.status,
                RefundItem.stripe_refund_id,
                RefundItem.amount,
                RefundItem.currency,
                RefundItem.failure_reason,
            )
            .where(
                RefundItem.report_due.is_(True),
                or_(RefundItem.report_claimed_until.is_(None), RefundItem.report_claimed_until < now),
                # Outcomes without a Stripe refund are only due for backer refunds (RunningBatch.reports_failures),
                # which flag them due only when failed: anything else is not claimed, so it never takes a slot.
                or_(RefundItem.stripe_refund_id.is_not(None), RefundItem.status == ItemStatus.FAILED),
            )
            .limit(limit)
        )
        if self.postgres:
            statement = statement.with_for_update(skip_locked=True)
        rows = (await self.session.execute(statement)).all()
        if not rows:
            return []
        await self.session.execute(
            update(RefundItem).where(RefundItem.id.in_([r.id for r in rows])).values(report_claimed_until=now + lease)
        )
        return [ReportTask(*row) for row in rows]

    async def mark_reported(self, reported: Sequence[tuple[ReportTask, str | None]]) -> None:
        """``(task, refusal)``: reported as ``task.status``; a refusal by the pledges service flags the item."""
        now = utcnow()
        accepted = [task for task, refusal in reported if refusal is None]
        if accepted:
            # Still due if the item moved on (e.g. a webhook) since this report was taken.
            statement = (
                ITEMS.update()
                .where(ITEMS.c.id == bindparam("b_id"))
                .values(
                    report_due=ITEMS.c.status != bindparam("b_status"),
                    reported_status=bindparam("b_status"),
                    reported_at=now,
                    report_claimed_until=None,
                )
            )
            await self.session.execute(statement, [{"b_id": t.id, "b_status": t.status.value} for t in accepted])
        for task, refusal in reported:
            if refusal is not None:
                await self.session.execute(
                    update(RefundItem)
                    .where(RefundItem.id == task.id)
                    .values(
                        report_due=RefundItem.status != task.status,
                        reported_status=task.status.value,
                        reported_at=now,
                        report_claimed_until=None,
                        follow_up_required=True,
                        follow_up_reason=f"pledges refused the outcome: {refusal}",
                    )
                )

    async def release_reports(self, task_ids: Sequence[uuid.UUID], retry_at: datetime) -> None:
        if task_ids:
            await self.session.execute(
                update(RefundItem).where(RefundItem.id.in_(list(task_ids))).values(report_claimed_until=retry_at)
            )


FINAL_COLUMNS = (
    "status",
    "stripe_refund_id",
    "stripe_status",
    "failure_code",
    "failure_reason",
    "follow_up_required",
    "follow_up_reason",
    "report_due",
)


def _final_values(outcome: Outcome) -> dict[str, Any]:
    assert outcome.status is not None
    return {
        "status": outcome.status.value,
        "stripe_refund_id": outcome.stripe_refund_id,
        "stripe_status": outcome.stripe_status,
        "failure_code": outcome.failure_code,
        "failure_reason": (outcome.failure_reason or "")[:500] or None,
        "follow_up_required": outcome.follow_up_reason is not None,
        "follow_up_reason": outcome.follow_up_reason,
        "report_due": outcome.report_due,
    }
