"""The refund workers every replica runs (a lifespan hook).

A pipeline per replica, all state in the database:

* the **claimer** takes due items of running batches under a lease (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL; SQLite's single writer serialises claims), a batch at a time, into a small local queue;
* **processors** (one per concurrency permit) send each item: a refund at Stripe with the item's idempotency
  key, under the fleet-wide rate limit - or a cancellation through the pledges service for a pledge that was
  never charged. An item claimed before (a previous process may have reached Stripe) is first reconciled by
  listing its PaymentIntent's refunds, so nothing is sent twice, even after Stripe forgot the key (24 h);
* the **recorder** writes outcomes in batches, each fenced by the lease (one short transaction per flush);
* the **reporter** tells the pledges service the outcomes, up to ``report_batch_size`` per call of its bulk route
  (durable ``report_due`` flag; retried under a growing delay while pledges is unavailable);
* **housekeeping** completes drained batches, cancels leftovers of canceled batches and applies webhook
  events that arrived before their item's outcome was written.

A process killed at any line leaves each item it held queued under a lease that expires; the next claim
resumes it (reconciled first). No transaction is held open across a call to Stripe or pledges.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import structlog
from fastapi import FastAPI

from services.refunds.batches.service import refund_batch_service
from services.refunds.clients import PledgeRefused, PledgesClient, RefundRecord
from services.refunds.config import Settings
from services.refunds.execution.repository import (
    ClaimedItem,
    ExecutionRepository,
    Outcome,
    ReportTask,
    RunningBatch,
)
from services.refunds.models import AuditAction, ItemAction, ItemStatus
from services.refunds.stripe_gateway import (
    CallWithdrawn,
    RefundRefused,
    StripeRefund,
    StripeRefunds,
    StripeUnavailable,
)
from services.refunds.webhooks.service import stripe_event_service
from shared.db import Database, utcnow
from shared.http import UpstreamUnavailable

log = structlog.get_logger("refunds.worker")

RECORD_FLUSH_SECONDS = 0.02
RECORD_FLUSH_SIZE = 200
HOUSEKEEPING_SECONDS = 1.0


def outcome_from_refund(item: ClaimedItem, refund: StripeRefund) -> Outcome:
    if refund.status == "succeeded":
        return Outcome(item, ItemStatus.SUCCEEDED, refund.id, refund.status)
    if refund.status in ("pending", "requires_action"):
        return Outcome(item, ItemStatus.PENDING, refund.id, refund.status)
    # failed / canceled: the money did not go back; never retried automatically.
    return Outcome(
        item,
        ItemStatus.FAILED,
        refund.id,
        refund.status,
        failure_code=refund.failure_reason or f"refund_{refund.status}",
        failure_reason=f"Stripe reports the refund {refund.status}"
        + (f" ({refund.failure_reason})" if refund.failure_reason else ""),
        follow_up_reason=f"refund {refund.status}: refund the backer by other means",
        release_ledger=True,
    )


class RefundWorker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        stripe: StripeRefunds,
        pledges: PledgesClient,
        *,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.stripe = stripe
        self.pledges = pledges
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = timedelta(seconds=settings.worker_lease_seconds)
        self.concurrency = settings.stripe_max_concurrency
        self.buffer_size = max(2 * self.concurrency, 8)
        self.queue: asyncio.Queue[ClaimedItem] = asyncio.Queue()
        self.outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self.batches: dict[uuid.UUID, RunningBatch] = {}
        self.in_flight: dict[uuid.UUID, ClaimedItem] = {}
        # Everything this replica holds under its lease, from the claim until its outcome is written: the
        # leases are renewed while held, however long a rate-limited turn takes.
        self.held: dict[uuid.UUID, ClaimedItem] = {}
        self._renewed_at = time.monotonic()
        self.drained: set[uuid.UUID] = set()
        self.wake_reporter = asyncio.Event()
        self.report_failures = 0  # report rounds in a row that left outcomes unsent: the retry delay grows
        self._rotation = 0
        self.processed = 0

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        loops = {
            "claimer": self._claimer,
            "recorder": self._recorder,
            "reporter": self._reporter,
            "housekeeping": self._housekeeping,
            **{f"processor-{i}": self._processor for i in range(self.concurrency)},
        }
        tasks = [
            asyncio.create_task(self._supervised(name, loop), name=f"refunds-{name}") for name, loop in loops.items()
        ]
        log.info("refund.worker.started", owner=self.owner, concurrency=self.concurrency)
        try:
            await asyncio.gather(*tasks)
        finally:
            # ``gather`` returns as soon as one loop has been cancelled, while the others may still be in their
            # own cleanup (a statement's connection being dropped): a second cancellation would cut that short.
            for task in tasks:
                if not task.cancelling():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._hand_back_on_shutdown()

    @staticmethod
    async def _supervised(name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """A loop that fails unexpectedly is logged and started again: one bug never silently stops the
        replica's workers while the process goes on answering (and passing its health checks)."""
        while True:
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refund.worker.loop_crashed", loop=name)
                await asyncio.sleep(1.0)

    async def _hand_back_on_shutdown(self) -> None:
        """A graceful stop returns what this replica holds at once instead of waiting for leases to expire:
        items never started go back as they were; items in flight go back marked attempted (reconciled)."""
        pending: list[Outcome] = []
        while not self.outcomes.empty():
            pending.append(self.outcomes.get_nowait())
        recorded = {o.item.id for o in pending}
        while not self.queue.empty():
            item = self.queue.get_nowait()
            pending.append(Outcome(item, None, may_have_called=False, error="worker stopped"))
        for item in self.in_flight.values():
            if item.id not in recorded:
                pending.append(Outcome(item, None, error="worker stopped mid-call"))
        if not pending:
            return
        try:
            await asyncio.wait_for(self._write(pending), timeout=5)
        except Exception:
            log.exception("refund.worker.hand_back_failed", items=len(pending))

    # -- claiming -------------------------------------------------------------------------------------------

    async def _refresh_batches(self) -> None:
        async with self.db.read_sessions() as session:
            running = await ExecutionRepository(session).running_batches()
        self.batches = {b.id: b for b in running}

    async def _renew_leases(self) -> None:
        if time.monotonic() - self._renewed_at < self.lease.total_seconds() / 3:
            return
        self._renewed_at = time.monotonic()
        if not self.held:
            return
        async with self.db.write_sessions() as session:
            await ExecutionRepository(session).extend_leases(self.owner, list(self.held), self.lease)
            await session.commit()

    async def _claimer(self) -> None:
        while True:
            claimed = 0
            try:
                await self._renew_leases()
                await self._refresh_batches()
                room = self.buffer_size - self.queue.qsize()
                if self.batches and room >= max(1, self.buffer_size // 4):
                    claimed = await self._claim(room)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refund.worker.claim_failed")
            if claimed == 0 or self.queue.qsize() >= self.buffer_size // 2:
                await asyncio.sleep(self.settings.worker_poll_seconds)

    async def _claim(self, room: int) -> int:
        batch_ids = list(self.batches)
        self._rotation = (self._rotation + 1) % len(batch_ids)
        ordered = batch_ids[self._rotation :] + batch_ids[: self._rotation]
        total = 0
        for batch_id in ordered:
            want = min(room - total, self.settings.worker_claim_size)
            if want <= 0:
                break
            async with self.db.write_sessions() as session:
                items, refused = await ExecutionRepository(session).claim(
                    batch_id, self.owner, want, self.lease, reports_failures=self.batches[batch_id].reports_failures
                )
                await session.commit()
            if refused:
                log.warning("refund.item.exceeds_refundable", batch_id=str(batch_id), items=len(refused))
            if not items and not refused:
                self.drained.add(batch_id)
            for item in items:
                if item.id in self.held:
                    continue  # already in hand here (its lease had lapsed): never twice in the queue
                self.held[item.id] = item
                self.queue.put_nowait(item)
            total += len(items)
        return total

    # -- processing -----------------------------------------------------------------------------------------

    async def _processor(self) -> None:
        while True:
            item = await self.queue.get()
            if item.batch_id not in self.batches:
                # Paused or canceled since the claim: hand it back untouched.
                self.outcomes.put_nowait(Outcome(item, None, may_have_called=False, error=None))
                continue
            self.in_flight[item.id] = item
            try:
                outcome = await self._execute(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("refund.item.crashed", item_id=str(item.id))
                outcome = self._retry(item, f"{type(exc).__name__}: {exc}", may_have_called=True)
            self.outcomes.put_nowait(outcome)
            self.in_flight.pop(item.id, None)

    def _retry(self, item: ClaimedItem, error: str, *, may_have_called: bool) -> Outcome:
        attempts = item.previous_attempts + 1
        delay = min(self.settings.worker_retry_max_delay_seconds, self.settings.worker_retry_delay_seconds * attempts)
        return Outcome(item, None, may_have_called=may_have_called, error=error, retry_after=delay)

    async def _execute(self, item: ClaimedItem) -> Outcome:
        if item.action is ItemAction.CANCEL_PLEDGE:
            return await self._cancel_pledge(item)
        return await self._refund(item)

    async def _cancel_pledge(self, item: ClaimedItem) -> Outcome:
        batch = self.batches.get(item.batch_id)
        reason = batch.reason if batch else "refund batch"
        try:
            await self.pledges.cancel_pledge(item.pledge_id, reason=reason[:500], idempotency_key=f"cancel:{item.id}")
        except PledgeRefused as exc:
            follow_up = "charged since the preview: refund it in a new batch" if exc.code == "already_charged" else None
            return Outcome(
                item,
                ItemStatus.FAILED,
                failure_code=exc.code,
                failure_reason=exc.detail or "The pledges service refused the cancellation.",
                follow_up_reason=follow_up,
            )
        except UpstreamUnavailable as exc:
            return self._retry(item, f"pledges unavailable: {exc.reason}", may_have_called=False)
        return Outcome(item, ItemStatus.SUCCEEDED, stripe_status=None)

    async def _refund(self, item: ClaimedItem) -> Outcome:
        assert item.payment_intent is not None
        item_id = str(item.id)
        key_age = (utcnow() - item.first_attempted_at).total_seconds()
        try:
            if item.previous_attempts > 0 or key_age > self.settings.stripe_idempotency_key_ttl_seconds:
                # A previous claim may have reached Stripe, and the key may be forgotten: look before resending.
                existing = await self.stripe.find_refund(item.payment_intent, item_id)
                if existing is not None:
                    log.info("refund.item.reconciled", item_id=item_id, refund_id=existing.id)
                    return outcome_from_refund(item, existing)
            batch = self.batches.get(item.batch_id)
            refund = await self.stripe.create_refund(
                # Checked again once the rate limit grants the call: a batch paused or canceled while the item
                # waited for its turn sends nothing more.
                still_wanted=lambda: item.batch_id in self.batches,
                payment_intent=item.payment_intent,
                amount=item.amount,
                reason=batch.stripe_reason if batch else self.settings.stripe_refund_reason,
                idempotency_key=item.idempotency_key,
                metadata={
                    "refund_item_id": item_id,
                    "refund_batch_id": str(item.batch_id),
                    "pledge_id": str(item.pledge_id),
                    "campaign_id": str(item.campaign_id),
                    "refund_kind": batch.kind.value if batch else "batch",
                },
            )
            return outcome_from_refund(item, refund)
        except CallWithdrawn:
            return Outcome(item, None, may_have_called=False, error=None)  # handed back untouched
        except RefundRefused as refused:
            if refused.looks_already_refunded:
                try:
                    existing = await self.stripe.find_refund(item.payment_intent, item_id)
                except StripeUnavailable as exc:
                    return self._retry(item, str(exc), may_have_called=True)
                if existing is not None:
                    return outcome_from_refund(item, existing)
            log.warning("refund.item.refused", item_id=item_id, code=refused.code, status=refused.http_status)
            return Outcome(
                item,
                ItemStatus.FAILED,
                failure_code=refused.code or "refund_refused",
                failure_reason=refused.message,
                release_ledger=True,
            )
        except StripeUnavailable as exc:
            return self._retry(item, str(exc), may_have_called=True)

    # -- recording ------------------------------------------------------------------------------------------

    async def _recorder(self) -> None:
        while True:
            batch = [await self.outcomes.get()]
            deadline = time.monotonic() + RECORD_FLUSH_SECONDS
            while len(batch) < RECORD_FLUSH_SIZE:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.outcomes.get(), timeout))
                except TimeoutError:
                    break
            while True:
                try:
                    await self._write(batch)
                    break
                except asyncio.CancelledError:
                    for outcome in batch:  # written on shutdown
                        self.outcomes.put_nowait(outcome)
                    raise
                except Exception:
                    log.exception("refund.worker.record_failed", items=len(batch))
                    await asyncio.sleep(0.5)

    async def _write(self, outcomes: list[Outcome]) -> None:
        async with self.db.write_sessions() as session:
            await ExecutionRepository(session).record(self.owner, outcomes)
            await session.commit()
        for outcome in outcomes:
            self.held.pop(outcome.item.id, None)
        finals = [o for o in outcomes if o.status is not None]
        self.processed += len(finals)
        if any(o.report_due for o in finals):
            self.wake_reporter.set()
        for outcome in finals:
            if outcome.status is ItemStatus.FAILED:
                log.info(
                    "refund.item.failed",
                    item_id=str(outcome.item.id),
                    code=outcome.failure_code,
                    follow_up=outcome.follow_up_reason is not None,
                )

    # -- reporting to the pledges service -------------------------------------------------------------------

    async def _reporter(self) -> None:
        while True:
            done = 0
            try:
                done = await self._report_round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refund.worker.report_failed")
            if done == 0:
                self.wake_reporter.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake_reporter.wait(), self.settings.worker_poll_seconds * 4)

    async def _report_round(self) -> int:
        """Claim the outcomes due (``report_batch_size`` at most) and tell pledges in one call; mark each
        reported (or refused: flagged for follow-up), and give back under a growing delay what pledges could
        not take. Returns how many were reported."""
        report_lease = timedelta(seconds=max(30.0, self.settings.http_timeout_seconds * 4))
        async with self.db.write_sessions() as session:
            tasks = await ExecutionRepository(session).claim_reports(self.settings.report_batch_size, report_lease)
            await session.commit()
        if not tasks:
            return 0
        reported, unsent = await self._report(tasks)
        self.report_failures = self.report_failures + 1 if unsent else 0
        async with self.db.write_sessions() as session:
            repository = ExecutionRepository(session)
            await repository.mark_reported(reported)
            if unsent:
                delay = self.settings.worker_retry_delay_seconds * 2 ** min(self.report_failures - 1, 16)
                retry_at = utcnow() + timedelta(seconds=min(delay, self.settings.worker_retry_max_delay_seconds))
                await repository.release_reports([t.id for t in unsent], retry_at)
            await session.commit()
        return len(reported)

    async def _report(self, tasks: list[ReportTask]) -> tuple[list[tuple[ReportTask, str | None]], list[ReportTask]]:
        """``(reported, unsent)``: each reported task with pledges' refusal code (None: recorded), and the tasks
        to send again later (pledges unavailable, or the call refused as a whole)."""
        try:
            results = await self.pledges.record_refunds([_record(task) for task in tasks])
        except UpstreamUnavailable as exc:
            log.warning("refund.report.pledges_unavailable", items=len(tasks), reason=exc.reason)
            return [], tasks
        except PledgeRefused as exc:
            if exc.status == 422 and len(tasks) > 1:
                # A record pledges cannot read (never expected) fails the whole call: halve until it is alone,
                # so the others are not held back by it.
                half = len(tasks) // 2
                first, first_unsent = await self._report(tasks[:half])
                second, second_unsent = await self._report(tasks[half:])
                return first + second, first_unsent + second_unsent
            if exc.status == 422:
                log.error("refund.report.refused", item_id=str(tasks[0].id), code=exc.code)
                return [(tasks[0], exc.code)], []
            log.error("refund.report.call_refused", items=len(tasks), status=exc.status, code=exc.code)
            return [], tasks
        answers = {result.refund_id: result for result in results}
        reported: list[tuple[ReportTask, str | None]] = []
        unsent: list[ReportTask] = []
        for task in tasks:
            answer = answers.get(task.id)
            if answer is None:
                unsent.append(task)
            elif answer.result == "refused":
                log.error("refund.report.refused", item_id=str(task.id), code=answer.code)
                reported.append((task, answer.code or "refused"))
            else:
                reported.append((task, None))
        return reported, unsent

    # -- housekeeping ---------------------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while True:
            try:
                await self._housekeep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refund.worker.housekeeping_failed")
            await asyncio.sleep(HOUSEKEEPING_SECONDS)

    async def _housekeep(self) -> None:
        drained = [b for b in self.drained if b in self.batches]
        self.drained.clear()
        if drained:
            async with self.db.write_sessions() as session:
                completed = await ExecutionRepository(session).complete_drained(drained)
                for batch_id in completed:
                    await refund_batch_service.audit(session, batch_id, AuditAction.COMPLETED, None)
                await session.commit()
            for batch_id in completed:
                log.info("refund.batch.completed", batch_id=str(batch_id))
        async with self.db.write_sessions() as session:
            canceled = await ExecutionRepository(session).cancel_leftovers()
            await session.commit()
        if canceled:
            log.info("refund.batch.leftovers_canceled", items=canceled)
        await self._apply_deferred_events()
        await self._recheck_pending()

    async def _apply_deferred_events(self) -> None:
        """Apply inbox events that could not be applied on receipt, one short transaction each."""
        async with self.db.read_sessions() as session:
            event_ids = await stripe_event_service.unprocessed(session)
        for event_id in event_ids:
            async with self.db.write_sessions() as session:
                await stripe_event_service.apply_stored(session, event_id)
                await session.commit()

    async def _recheck_pending(self) -> None:
        """Ask Stripe about refunds pending for long: webhooks are the fast path, not the only one."""
        cutoff = utcnow() - timedelta(seconds=self.settings.pending_recheck_seconds)
        async with self.db.write_sessions() as session:
            stale = await ExecutionRepository(session).claim_stale_pending(cutoff, limit=20)
            await session.commit()
        for item_id, refund_id in stale:
            try:
                refund = await self.stripe.retrieve_refund_object(refund_id)
            except (StripeUnavailable, RefundRefused) as exc:
                log.warning("refund.pending.recheck_failed", item_id=str(item_id), error=str(exc))
                continue
            async with self.db.write_sessions() as session:
                outcome = await stripe_event_service.apply_refund(session, refund)
                await session.commit()
            log.info("refund.pending.rechecked", item_id=str(item_id), outcome=outcome)


def _record(task: ReportTask) -> RefundRecord:
    return RefundRecord(
        pledge_id=task.pledge_id,
        refund_id=task.id,
        stripe_refund_id=task.stripe_refund_id,
        amount=task.amount,
        currency=task.currency,
        status=task.status.value,  # type: ignore[arg-type]
        failure_reason=(task.failure_reason or "")[:200] or None,  # the pledges contract's limit
        batch_id=task.batch_id,
    )


@contextlib.asynccontextmanager
async def refund_workers(app: FastAPI) -> AsyncIterator[None]:
    """Lifespan hook: the Stripe wrapper (always, for reconciliation) and this replica's workers."""
    settings: Settings = app.state.settings
    stripe = StripeRefunds(settings)
    await stripe.open()
    app.state.stripe = stripe
    task: asyncio.Task[None] | None = None
    if settings.worker_enabled:
        worker = RefundWorker(app.state.db, settings, stripe, app.state.pledges)
        app.state.worker = worker
        task = asyncio.create_task(worker.run(), name="refunds-worker")
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await stripe.aclose()
