"""Under the shared rate limit (two replicas at once) and under injected Stripe faults: still exactly once."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import AsyncExitStack
from datetime import datetime

import httpx

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.tests.fakes import FakePledges
from services.refunds.tests.support import (
    create_and_start_batch,
    seed_charged_pledges,
    stripe_refunds_by_intent,
    wait_for_batch,
)
from shared.testing import app_client, auth_headers
from stripe_local.testing import StripeLocalProcess

OPERATOR = auth_headers("operator-1", "operator")


async def assert_exactly_once(stripe_server: StripeLocalProcess, pledges: list) -> None:
    refunds = await stripe_refunds_by_intent(stripe_server)
    for pledge in pledges:
        made = refunds.get(pledge.stripe_payment_intent_id, [])
        assert len(made) == 1, (pledge.pledge_id, made)
        assert made[0]["amount"] == pledge.charged_amount


def achieved_rate(report: dict) -> float:
    """Refunds per second from the batch's first attempt to its last outcome (the run's start and end count)."""
    started = min(datetime.fromisoformat(i["first_attempted_at"]) for i in report["items"])
    finished = max(datetime.fromisoformat(i["finished_at"]) for i in report["items"])
    return len(report["items"]) / (finished - started).total_seconds()


async def test_two_replicas_share_a_batch_under_the_fleet_rate_limit(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    limit = 40.0
    pledges = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [700] * 360)
    # Stripe's own limiter at exactly our limit: one request too many would be a 429 it counts.
    stripe_server.local("POST", "rate_limit", json={"limit_per_second": limit})
    rejected_before = stripe_server.local("GET", "rate_limit")["rejected"]
    replica = settings.model_copy(update={"worker_enabled": True, "stripe_rate_limit_per_second": limit})
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(app_client(create_app(replica)))
        second = await stack.enter_async_context(app_client(create_app(replica)))
        batch_id = await create_and_start_batch(first, campaign_id, OPERATOR)
        await wait_for_batch(second, batch_id, OPERATOR, timeout=60)
        report = (await first.get(f"/v1/refund-batches/{batch_id}/report?format=json", headers=OPERATOR)).json()
        workers = [first._transport.app.state.worker, second._transport.app.state.worker]  # type: ignore[attr-defined]

    assert stripe_server.local("GET", "rate_limit")["rejected"] == rejected_before
    assert all(w.processed > 0 for w in workers), [w.processed for w in workers]  # both replicas worked
    assert sum(w.processed for w in workers) == len(pledges)  # and no item twice
    await assert_exactly_once(stripe_server, pledges)

    achieved = achieved_rate(report)
    print(f"\nachieved {achieved:.1f}/s at a limit of {limit:.0f}/s")
    assert achieved <= limit
    # The limiter spaces slots 2% wide and gives up a slot the loop woke too late for (never above the limit in
    # any second); the start and the end of the run count too. The bench measures the sustained rate.
    assert achieved >= limit * 0.85


async def test_injected_429s_500s_and_dropped_connections_still_refund_exactly_once(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    pledges = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [900 + i for i in range(300)])
    # A dropped connection happens after Stripe executed the refund: only the same key makes the retry safe.
    stripe_server.local(
        "POST",
        "faults",
        json={
            "error_rate": 0.3,
            "mix": {"500": 1, "429": 1, "drop": 1},
            "methods": ["POST"],
            "path_prefix": "/v1/refunds",
        },
    )
    app = create_app(settings.model_copy(update={"worker_enabled": True, "stripe_attempts_per_claim": 3}))
    async with app_client(app) as client:
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        body = await wait_for_batch(client, batch_id, OPERATOR, timeout=90)
        report = (await client.get(f"/v1/refund-batches/{batch_id}/report?format=json", headers=OPERATOR)).json()
    injected = stripe_server.local("GET", "faults")["injected"]
    for kind in ("drop", "500", "429"):
        assert injected.get(kind, 0) > 10, injected
    assert body["progress"]["by_status"][0] | {"amounts": None} == {
        "status": "succeeded",
        "count": 300,
        "amounts": None,
    }
    assert all(line["stripe_refund_id"] for line in report["items"])
    await assert_exactly_once(stripe_server, pledges)


async def test_refusals_are_recorded_with_their_reason_and_already_refunded_is_checked_at_stripe(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    ours, theirs = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [1200, 1300])
    # Someone refunded `theirs` at Stripe directly (not through us); pledges does not know yet.
    async with httpx.AsyncClient() as http:
        await http.post(
            f"{stripe_server.url}/v1/refunds",
            data={"payment_intent": theirs.stripe_payment_intent_id},
            headers={"Authorization": "Bearer sk_test_local"},
        )
    app = create_app(settings.model_copy(update={"worker_enabled": True}))
    async with app_client(app) as client:
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        await wait_for_batch(client, batch_id, OPERATOR, timeout=30)
        report = (await client.get(f"/v1/refund-batches/{batch_id}/report?format=json", headers=OPERATOR)).json()
    lines = {line["pledge_id"]: line for line in report["items"]}
    assert lines[str(ours.pledge_id)]["status"] == "succeeded"
    refused = lines[str(theirs.pledge_id)]
    assert refused["status"] == "failed"
    assert refused["failure_code"] == "charge_already_refunded"
    assert refused["stripe_refund_id"] is None
    refunds = await stripe_refunds_by_intent(stripe_server)
    assert len(refunds[theirs.charged_intent]) == 1  # only the outside one


async def test_a_busy_main_loop_does_not_cost_the_batch_its_rate(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    """The replica's main loop blocked 60 ms five times a second (what a loaded machine does to it): the calls
    to Stripe wait for their slots on the sender loop, which wakes on time, so few slots are given up and the
    batch still runs at the limit."""
    limit = 50.0
    pledges = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [800] * 250)
    stripe_server.local("POST", "rate_limit", json={"limit_per_second": limit})
    rejected_before = stripe_server.local("GET", "rate_limit")["rejected"]
    replica = settings.model_copy(update={"worker_enabled": True, "stripe_rate_limit_per_second": limit})
    app = create_app(replica)

    async def hog() -> None:
        while True:
            await asyncio.sleep(0.14)
            ends = time.perf_counter() + 0.06
            while time.perf_counter() < ends:  # CPU, holding the GIL: not a sleep
                pass

    async with app_client(app) as client:
        hogging = asyncio.create_task(hog())
        try:
            batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
            await wait_for_batch(client, batch_id, OPERATOR, timeout=60)
        finally:
            hogging.cancel()
        report = (await client.get(f"/v1/refund-batches/{batch_id}/report?format=json", headers=OPERATOR)).json()
        limiter = app.state.stripe.limiter
        granted, dropped = limiter.granted, limiter.dropped

    assert stripe_server.local("GET", "rate_limit")["rejected"] == rejected_before
    await assert_exactly_once(stripe_server, pledges)
    achieved = achieved_rate(report)
    print(f"\nachieved {achieved:.1f}/s at a limit of {limit:.0f}/s; {granted} slots used, {dropped} given up")
    assert achieved <= limit
    # Measured: 44-47/s here, 1-13 slots given up (the OS waking the thread while the cores are busy); with the
    # waits on the main loop, 35/s and 75-87 given up. The start and the end of the run count in `achieved`.
    assert achieved >= limit * 0.8
    assert dropped <= granted * 0.1, f"{dropped} slots given up for {granted} used"
