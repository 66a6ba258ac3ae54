"""The reporter tells pledges the outcomes in bulk: one call per round of up to `report_batch_size` outcomes,
each marked reported or refused as pledges answers it, nothing lost while pledges is down."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import select, update

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.execution.worker import RefundWorker
from services.refunds.models import ItemStatus, RefundItem
from services.refunds.tests.fakes import FakePledge, FakePledges
from services.refunds.tests.support import create_and_start_batch, seed_charged_pledges, wait_for_batch
from shared.db import Database, utcnow
from shared.testing import app_client, auth_headers
from stripe_local.testing import StripeLocalProcess

OPERATOR = auth_headers("operator-1", "operator")


async def _refund_batch_while_pledges_is_down(
    settings: Settings, fake: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID, count: int
) -> list[FakePledge]:
    """A batch refunded in full while every report to pledges fails (503): its outcomes all wait, due."""
    pledges = await seed_charged_pledges(fake, stripe_server, campaign_id, [1000 + i for i in range(count)])
    fake.refuse_refund_records = True
    async with app_client(create_app(settings.model_copy(update={"worker_enabled": True}))) as client:
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        await wait_for_batch(client, batch_id, OPERATOR, timeout=60)
    assert not any(p.refunds for p in pledges)
    # Reports the stopped replica held (a round cut short by the stop keeps its claim until its lease ends)
    # and the delays of its retries: all over, as if time had passed.
    db = Database(settings.database_url)
    try:
        async with db.write_sessions() as session:
            await session.execute(update(RefundItem).values(report_claimed_until=None))
            await session.commit()
    finally:
        await db.dispose()
    return pledges


@asynccontextmanager
async def reporter(settings: Settings) -> AsyncIterator[RefundWorker]:
    """A worker of a replica whose loops do not run: the test drives its report rounds itself."""
    app = create_app(settings)
    async with app_client(app):
        yield RefundWorker(app.state.db, settings, app.state.stripe, app.state.pledges)


async def _items(settings: Settings) -> dict[uuid.UUID, RefundItem]:
    db = Database(settings.database_url)
    try:
        async with db.read_sessions() as session:
            return {item.pledge_id: item for item in (await session.execute(select(RefundItem))).scalars()}
    finally:
        await db.dispose()


async def _claimed_until(settings: Settings) -> set[datetime | None]:
    return {item.report_claimed_until for item in (await _items(settings)).values()}


async def test_outcomes_due_reach_pledges_in_one_call_and_are_marked_reported(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    pledges = await _refund_batch_while_pledges_is_down(settings, fake_pledges, stripe_server, campaign_id, 150)
    fake_pledges.refuse_refund_records = False
    calls_before = fake_pledges.report_requests

    async with reporter(settings) as worker:
        assert await worker._report_round() == len(pledges)
        assert await worker._report_round() == 0  # nothing left due

    assert fake_pledges.report_requests - calls_before == 1
    assert sorted(str(c["refund_id"]) for c in fake_pledges.refund_calls) == sorted(
        str(i.id) for i in (await _items(settings)).values()
    )
    assert all(p.status == "refunded" and len(p.refunds) == 1 for p in pledges)
    items = await _items(settings)
    assert {(i.report_due, i.reported_status, i.follow_up_required) for i in items.values()} == {
        (False, "succeeded", False)
    }


async def test_while_pledges_is_unavailable_reports_wait_under_a_growing_delay_and_none_is_lost(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    pledges = await _refund_batch_while_pledges_is_down(settings, fake_pledges, stripe_server, campaign_id, 12)
    base = settings.worker_retry_delay_seconds  # 0.2 s in tests

    async with reporter(settings) as worker:
        started = utcnow()
        assert await worker._report_round() == 0
        ended = utcnow()
        [first] = await _claimed_until(settings)
        assert first is not None
        assert started + timedelta(seconds=base) <= first <= ended + timedelta(seconds=base)
        calls = fake_pledges.report_requests
        assert await worker._report_round() == 0  # not due again yet: nothing is sent
        assert fake_pledges.report_requests == calls

        await asyncio.sleep((first - utcnow()).total_seconds() + 0.05)
        started = utcnow()
        assert await worker._report_round() == 0
        ended = utcnow()
        [second] = await _claimed_until(settings)
        assert second is not None
        assert started + timedelta(seconds=2 * base) <= second <= ended + timedelta(seconds=2 * base)

        fake_pledges.refuse_refund_records = False
        await asyncio.sleep((second - utcnow()).total_seconds() + 0.05)
        assert await worker._report_round() == len(pledges)
        assert worker.report_failures == 0

    assert all(p.status == "refunded" for p in pledges)
    assert {i.report_due for i in (await _items(settings)).values()} == {False}


async def test_outcomes_pledges_refuses_are_flagged_and_the_others_recorded(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    pledges = await _refund_batch_while_pledges_is_down(settings, fake_pledges, stripe_server, campaign_id, 20)
    fake_pledges.refuse_refund_records = False
    gone, unreadable, *recorded = pledges
    del fake_pledges.pledges[gone.pledge_id]  # unknown at pledges: refused for this record alone
    items = await _items(settings)
    # A record pledges cannot read fails its whole call (422): the reporter halves the call until it is alone.
    fake_pledges.unreadable_refund_ids.add(str(items[unreadable.pledge_id].id))
    calls_before = fake_pledges.report_requests

    async with reporter(settings) as worker:
        assert await worker._report_round() == len(pledges)

    items = await _items(settings)
    assert [(items[p.pledge_id].report_due, items[p.pledge_id].follow_up_reason) for p in (gone, unreadable)] == [
        (False, "pledges refused the outcome: pledge_not_found"),
        (False, "pledges refused the outcome: validation_error"),
    ]
    assert all(items[p.pledge_id].follow_up_required for p in (gone, unreadable))
    assert all(p.status == "refunded" for p in recorded)
    assert not unreadable.refunds
    assert {(items[p.pledge_id].report_due, items[p.pledge_id].follow_up_required) for p in recorded} == {
        (False, False)
    }
    # 1 refused call, then halves: far fewer calls than records.
    assert fake_pledges.report_requests - calls_before < 12


async def test_an_outcome_with_nothing_to_report_is_never_claimed_and_takes_no_slot(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    """Only a Stripe refund or a failure is reported: a row flagged due without either (a canceled item) is
    left out of the claim itself, so it never holds one of a round's slots, round after round."""
    pledges = await _refund_batch_while_pledges_is_down(settings, fake_pledges, stripe_server, campaign_id, 6)
    fake_pledges.refuse_refund_records = False
    items = await _items(settings)
    nothing, *reported = pledges
    db = Database(settings.database_url)
    try:
        async with db.write_sessions() as session:
            await session.execute(
                update(RefundItem)
                .where(RefundItem.id == items[nothing.pledge_id].id)
                .values(stripe_refund_id=None, status=ItemStatus.CANCELED, report_due=True)
            )
            await session.commit()
    finally:
        await db.dispose()

    async with reporter(settings.model_copy(update={"report_batch_size": 1})) as worker:
        for _ in reported:
            assert await worker._report_round() == 1  # a slot each: the empty row never takes one
        assert await worker._report_round() == 0

    items = await _items(settings)
    assert items[nothing.pledge_id].report_claimed_until is None
    assert {items[p.pledge_id].report_due for p in reported} == {False}
