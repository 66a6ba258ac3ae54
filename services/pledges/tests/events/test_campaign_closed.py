"""`campaign.closed`: a succeeded all-or-nothing campaign is charged (rate-limited, exactly once per pledge,
with a grace period for failed cards); a failed or canceled one cancels its pledges with no money moving."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.pledges.app import create_app
from services.pledges.config import Settings
from services.pledges.tests.factories import (
    Backer,
    LiveCampaign,
    idem,
    live_campaign,
    payment_intents,
    pledge_body,
    refunds,
    reservation,
    service_headers,
    setup_intents,
)
from shared.testing import app_client
from stripe_local.testing import StripeLocalProcess


async def close(client: httpx.AsyncClient, campaign: LiveCampaign, outcome: str) -> None:
    """What the campaigns relay POSTs for its `campaign.closed` event (delivered twice: at least once)."""
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "campaign.closed",
        "source": "campaigns",
        "occurred_at": datetime.now(UTC).isoformat(),
        "payload": {
            "campaign_id": campaign.id,
            "outcome": outcome,
            "funding_model": campaign.funding_model,
            "currency": "USD",
            "goal_amount": 10_000,
            "deadline_at": datetime.now(UTC).isoformat(),
            "closed_at": datetime.now(UTC).isoformat(),
            "public_funding": {},
        },
    }
    for _ in range(2):
        response = await client.post("/internal/events", json=envelope, headers=service_headers())
        assert response.status_code == 202, response.text


async def pledge(client: httpx.AsyncClient, campaign: LiveCampaign, backer: Backer, pm: str = "pm_card_visa") -> str:
    response = await client.post(
        "/v1/pledges", json=pledge_body(campaign, payment_method=pm), headers=backer.headers | idem()
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def get(client: httpx.AsyncClient, pledge_id: str) -> dict[str, Any]:
    response = await client.get(f"/internal/pledges/{pledge_id}", headers=service_headers())
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
async def tuned(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The service with a short grace period and a charge rate a test can measure."""
    app = create_app(settings.model_copy(update={"grace_period_seconds": 1.5, "charge_rate_per_second": 10.0}))
    async with app_client(app) as client:
        yield client, app


async def test_a_succeeded_campaign_charges_each_pledge_once_and_a_failed_card_gets_a_grace_period(
    client: httpx.AsyncClient, app: FastAPI, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    campaign = await live_campaign(campaigns)
    backers = [Backer() for _ in range(3)]
    good = [await pledge(client, campaign, b) for b in backers[:2]]
    failing = await pledge(client, campaign, backers[2], "pm_card_chargeCustomerFail")  # saves, then fails to charge
    worker = app.state.pledge_worker

    await close(client, campaign, "succeeded")
    await worker.run_once()
    await worker.run_once()  # a second poll finds nothing more to charge

    for pledge_id in good:
        seen = await get(client, pledge_id)
        assert (seen["status"], seen["charged_amount"]) == ("collected", 7_000)
        [intent] = payment_intents(stripe_server, pledge_id)
        assert (intent["status"], intent["amount_received"]) == ("succeeded", 7_000)
        assert seen["stripe_payment_intent_id"] == intent["id"]
    failed = (await client.get(f"/v1/pledges/{failing}", headers=backers[2].headers)).json()
    assert failed["status"] == "payment_failed"
    assert failed["payment"]["decline_code"] == "generic_decline"
    grace = datetime.fromisoformat(failed["payment"]["grace_until"])
    assert 6.9 * 86400 < (grace - datetime.now(UTC)).total_seconds() <= 7 * 86400

    # The backer supplies a new card within the grace period: it is charged on the next poll, once.
    updated = await client.put(
        f"/v1/pledges/{failing}/payment-method",
        json={"payment_method": "pm_card_mastercard"},
        headers=backers[2].headers,
    )
    assert updated.status_code == 200, updated.text
    await worker.run_once()
    await worker.run_once()
    recovered = await get(client, failing)
    assert (recovered["status"], recovered["charged_amount"]) == ("collected", 7_000)
    statuses = sorted(i["status"] for i in payment_intents(stripe_server, failing))
    assert statuses == ["requires_payment_method", "succeeded"]


async def test_a_pledge_still_failing_after_the_grace_period_is_dropped_and_released(
    tuned: tuple[httpx.AsyncClient, FastAPI], campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    client, app = tuned
    campaign = await live_campaign(campaigns)
    pledge_id = await pledge(client, campaign, Backer(), "pm_card_chargeCustomerFail")
    await close(client, campaign, "succeeded")
    worker = app.state.pledge_worker
    await worker.run_once()
    assert (await get(client, pledge_id))["status"] == "payment_failed"

    time.sleep(1.6)
    await worker.run_once()

    assert (await get(client, pledge_id))["status"] == "dropped"
    assert (await reservation(campaigns, campaign.id, pledge_id))["status"] == "released"
    [saved] = setup_intents(stripe_server, pledge_id)
    detached = stripe_server.local("GET", "events", type="payment_method.detached")["data"]
    assert any(e["data"]["object"]["id"] == saved["payment_method"] for e in detached)
    assert [i["status"] for i in payment_intents(stripe_server, pledge_id)] == ["requires_payment_method"]


async def test_the_charge_run_keeps_to_its_rate(
    tuned: tuple[httpx.AsyncClient, FastAPI], campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    client, app = tuned
    campaign = await live_campaign(campaigns)
    ids = [await pledge(client, campaign, Backer()) for _ in range(6)]
    await close(client, campaign, "succeeded")

    started = time.monotonic()
    await app.state.pledge_worker.run_once()
    elapsed = time.monotonic() - started

    assert elapsed >= 0.45  # 6 charges at 10/s: at least five intervals of 0.1 s
    for pledge_id in ids:
        assert len(payment_intents(stripe_server, pledge_id)) == 1


@pytest.mark.parametrize("outcome", ["failed", "canceled"])
async def test_a_failed_or_canceled_all_or_nothing_campaign_cancels_its_pledges_and_charges_nothing(
    client: httpx.AsyncClient,
    app: FastAPI,
    campaigns: httpx.AsyncClient,
    stripe_server: StripeLocalProcess,
    outcome: str,
) -> None:
    campaign = await live_campaign(campaigns)
    ids = [await pledge(client, campaign, Backer()) for _ in range(2)]

    await close(client, campaign, outcome)
    await app.state.pledge_worker.run_once()

    for pledge_id in ids:
        assert (await get(client, pledge_id))["status"] == "canceled"
        assert payment_intents(stripe_server, pledge_id) == []
        assert (await reservation(campaigns, campaign.id, pledge_id))["status"] == "released"


async def test_a_canceled_flexible_campaign_refunds_its_payments(
    client: httpx.AsyncClient, app: FastAPI, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    pledge_id = await pledge(client, campaign, Backer())

    await close(client, campaign, "canceled")
    await app.state.pledge_worker.run_once()

    seen = await get(client, pledge_id)
    assert (seen["status"], seen["refunded_amount"]) == ("canceled", 7_000)
    [intent] = payment_intents(stripe_server, pledge_id)
    assert [r["amount"] for r in refunds(stripe_server, intent["id"])] == [7_000]


async def test_a_succeeded_flexible_campaign_charges_nothing_more(
    client: httpx.AsyncClient, app: FastAPI, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    pledge_id = await pledge(client, campaign, Backer())
    await close(client, campaign, "succeeded")
    await app.state.pledge_worker.run_once()
    assert (await get(client, pledge_id))["status"] == "collected"
    assert len(payment_intents(stripe_server, pledge_id)) == 1
