"""Pause, resume and cancel while workers run; overlapping batches never refund beyond what was charged."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.tests.fakes import FakePledge, FakePledges
from services.refunds.tests.support import (
    create_and_start_batch,
    eventually,
    seed_charged_pledges,
    stripe_refunds_by_intent,
    wait_for_batch,
)
from shared.testing import app_client, auth_headers
from stripe_local.testing import StripeLocalProcess

OPERATOR = auth_headers("operator-1", "operator")


async def test_pause_stops_new_refunds_resume_finishes_and_cancel_keeps_what_was_sent(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    pledges = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [1500] * 120)
    other = uuid.uuid4()
    others = await seed_charged_pledges(fake_pledges, stripe_server, other, [1600] * 120)
    slow = settings.model_copy(update={"worker_enabled": True, "stripe_rate_limit_per_second": 30.0})
    async with app_client(create_app(slow)) as client:
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        base = f"/v1/refund-batches/{batch_id}"

        async def done_items() -> int:
            return int((await client.get(base, headers=OPERATOR)).json()["progress"]["done_items"])

        await eventually(lambda: _at_least(done_items, 20), timeout=20, what="some refunds")
        assert (await client.post(f"{base}/pause", headers=OPERATOR)).status_code == 200
        await eventually(lambda: _settled(done_items), timeout=10, what="in-flight refunds finished")
        paused_at = await done_items()
        stripe_count = _count(await stripe_refunds_by_intent(stripe_server), pledges)
        assert paused_at < len(pledges)
        assert stripe_count == paused_at  # nothing sent beyond what was recorded

        assert (await client.post(f"{base}/resume", headers=OPERATOR)).status_code == 200
        body = await wait_for_batch(client, batch_id, OPERATOR, timeout=30)
        assert body["progress"]["done_items"] == len(pledges)

        # Cancel a second batch mid-run: what was sent stands and is reported, the rest is never sent.
        second = await create_and_start_batch(client, other, OPERATOR)
        await eventually(
            lambda: _at_least(lambda: _done(client, second), 15), timeout=20, what="some refunds of the second"
        )
        assert (await client.post(f"/v1/refund-batches/{second}/cancel", headers=OPERATOR)).status_code == 200

        async def all_decided() -> dict | None:
            body = (await client.get(f"/v1/refund-batches/{second}", headers=OPERATOR)).json()
            return body if body["progress"]["queued_items"] == 0 else None

        final = await eventually(all_decided, timeout=20, what="canceled batch settled")
        report = (await client.get(f"/v1/refund-batches/{second}/report?format=json", headers=OPERATOR)).json()

    by_status = {s["status"]: s["count"] for s in final["progress"]["by_status"]}
    assert final["status"] == "canceled"
    assert by_status["canceled"] > 0
    assert by_status["succeeded"] >= 15
    assert by_status["succeeded"] + by_status["canceled"] == len(others)
    refunds = await stripe_refunds_by_intent(stripe_server)
    assert _count(refunds, pledges) == len(pledges)
    assert _count(refunds, others) == by_status["succeeded"]
    for line in report["items"]:
        made = refunds.get(next(p for p in others if str(p.pledge_id) == line["pledge_id"]).charged_intent)
        assert (line["status"] == "succeeded") == bool(made)


async def test_overlapping_batches_never_refund_beyond_what_was_charged(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    (pledge,) = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [1000])
    # The pledges service lags behind: it has not recorded the first refund when the second batch is previewed.
    fake_pledges.refuse_refund_records = True
    async with app_client(create_app(settings.model_copy(update={"worker_enabled": True}))) as client:
        first = await create_and_start_batch(
            client, campaign_id, OPERATOR, amount_rule={"type": "percent", "percent": 60}
        )
        await wait_for_batch(client, first, OPERATOR, timeout=20)
        second = await create_and_start_batch(client, campaign_id, OPERATOR)  # sees 1,000 still refundable
        await wait_for_batch(client, second, OPERATOR, timeout=20)
        line = (await client.get(f"/v1/refund-batches/{second}/report?format=json", headers=OPERATOR)).json()["items"][
            0
        ]
    assert line["amount"] == 1000
    assert (line["status"], line["failure_code"]) == ("failed", "exceeds_refundable")
    refunds = await stripe_refunds_by_intent(stripe_server)
    assert [r["amount"] for r in refunds[pledge.charged_intent]] == [600]


async def test_a_pause_stops_refunds_already_waiting_for_their_rate_limited_turn(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    """At 4 refunds/s with 16 concurrent slots, up to 16 items wait for their turn at any moment: a pause must
    stop them too, not only the items still in the queue."""
    pledges = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [1200] * 40)
    slow = settings.model_copy(
        update={"worker_enabled": True, "stripe_rate_limit_per_second": 4.0, "stripe_max_concurrency": 16}
    )
    async with app_client(create_app(slow)) as client:
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        await eventually(lambda: _at_least(lambda: _done(client, batch_id), 4), timeout=20, what="some refunds")
        assert (await client.post(f"/v1/refund-batches/{batch_id}/pause", headers=OPERATOR)).status_code == 200
        sent_at_pause = _count(await stripe_refunds_by_intent(stripe_server), pledges)
        await asyncio.sleep(2.5)  # ten more turns of the rate limit
        sent_after = _count(await stripe_refunds_by_intent(stripe_server), pledges)
        body = (await client.get(f"/v1/refund-batches/{batch_id}", headers=OPERATOR)).json()
    # The worker sees the pause within a poll (0.25 s): at most the turn granted meanwhile still goes out.
    assert sent_after - sent_at_pause <= 2, (sent_at_pause, sent_after)
    assert body["status"] == "paused"
    assert body["progress"]["done_items"] == sent_after


async def test_items_waiting_longer_than_the_lease_are_kept_not_claimed_twice(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    """A 1 s lease while items wait ~5 s for a rate-limited turn: the worker renews what it holds, so no claim
    takes an item it still has, the worker survives, and every pledge is refunded exactly once."""
    pledges = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [1300] * 30)
    tight = settings.model_copy(
        update={
            "worker_enabled": True,
            "stripe_rate_limit_per_second": 5.0,
            "stripe_max_concurrency": 8,
            "worker_lease_seconds": 1.0,
        }
    )
    async with app_client(create_app(tight)) as client:
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        body = await wait_for_batch(client, batch_id, OPERATOR, timeout=40)
        worker = client._transport.app.state.worker  # type: ignore[attr-defined]
    assert body["progress"]["done_items"] == len(pledges)
    assert worker.processed == len(pledges)  # each item decided once by this replica
    refunds = await stripe_refunds_by_intent(stripe_server)
    assert all(len(refunds.get(p.charged_intent, [])) == 1 for p in pledges)


async def _at_least(probe: Callable[[], Awaitable[int]], threshold: int) -> bool:
    return await probe() >= threshold


async def _done(client: httpx.AsyncClient, batch_id: str) -> int:
    return int((await client.get(f"/v1/refund-batches/{batch_id}", headers=OPERATOR)).json()["progress"]["done_items"])


async def _settled(probe: Callable[[], Awaitable[int]]) -> bool:
    """True once two readings half a second apart agree."""
    first = await probe()
    await asyncio.sleep(0.5)
    return bool(first == await probe())


def _count(refunds: dict[str, list[dict[str, Any]]], pledges: list[FakePledge]) -> int:
    return sum(len(refunds.get(p.charged_intent, [])) for p in pledges)
