"""A backer's own refund, asked for by the pledges service: no approval, one per pledge, same machinery."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.tests.fakes import FakePledge, FakePledges
from services.refunds.tests.support import eventually, seed_charged_pledges, stripe_refunds_by_intent
from shared.auth import ServiceTokenSource
from shared.settings import DEV_SERVICE_SECRET
from shared.testing import app_client, auth_headers
from stripe_local.testing import StripeLocalProcess

PLEDGES_SERVICE = {"Authorization": f"Bearer {ServiceTokenSource(DEV_SERVICE_SECRET, 'pledges').token()}"}


def body_for(pledge: FakePledge, **overrides: Any) -> dict[str, Any]:
    return {
        "reason": "canceled_by_backer",
        "campaign_id": str(pledge.campaign_id),
        "backer_id": pledge.backer_id,
        "currency": pledge.currency,
        "amount": pledge.charged_amount,
        "charged_amount": pledge.charged_amount,
        "refunded_amount": 0,
        "stripe_payment_intent_id": pledge.stripe_payment_intent_id,
        **overrides,
    }


def ask(client: httpx.AsyncClient, pledge: FakePledge, headers: dict[str, str], **overrides: Any) -> Any:
    return client.post(
        f"/internal/pledges/{pledge.pledge_id}/backer-refund",
        json=body_for(pledge, **overrides),
        headers=headers | {"Idempotency-Key": f"pledge:{pledge.pledge_id}:refund"},
    )


async def test_a_backer_refund_runs_at_once_is_made_once_and_reported_to_pledges(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    # Far above the approval threshold: a backer's own refund still needs nobody's approval.
    amount = settings.second_approval_threshold_amount + 5_000
    (pledge,) = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [amount])
    async with app_client(create_app(settings.model_copy(update={"worker_enabled": True}))) as client:
        first, *replays = await asyncio.gather(*(ask(client, pledge, PLEDGES_SERVICE) for _ in range(4)))
        assert first.status_code in (200, 201), first.text
        assert sorted(r.status_code for r in [first, *replays]) == [200, 200, 200, 201]
        refund = first.json()
        assert {r.json()["id"] for r in replays} == {refund["id"]}
        assert (refund["amount"], refund["pledge_id"]) == (amount, str(pledge.pledge_id))

        async def reported() -> bool:
            return any(r["status"] == "succeeded" for r in pledge.refunds.values())

        await eventually(reported, timeout=20, what="the outcome reported to pledges")
        # Asked again later (the pledges sweeper after a crash): the same refund, settled; nothing new sent.
        later = await ask(client, pledge, PLEDGES_SERVICE, amount=1)
        assert (later.status_code, later.json()["id"], later.json()["status"]) == (200, refund["id"], "succeeded")

        async def completed() -> dict[str, Any] | None:
            url = f"/v1/refund-batches/{refund['batch_id']}"
            batch = (await client.get(url, headers=auth_headers("op", "operator"))).json()
            return batch if batch["status"] == "completed" else None

        batch = await eventually(completed, timeout=10, what="the batch of one completed")
        assert (batch["kind"], batch["requires_second_approval"]) == ("backer", False)

    [made] = (await stripe_refunds_by_intent(stripe_server))[pledge.charged_intent]
    assert made["amount"] == amount
    assert made["metadata"]["refund_item_id"] == refund["id"]
    assert made["metadata"]["refund_kind"] == "backer"
    assert [c["refund_id"] for c in fake_pledges.refund_calls] == [refund["id"]]
    assert pledge.refunds[refund["id"]]["stripe_refund_id"] == made["id"]


async def test_only_a_service_token_asks_for_a_backer_refund(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    pledge = fake_pledges.add(campaign_id=campaign_id, charged_amount=500, stripe_payment_intent_id="pi_x")
    for headers, status in (
        ({}, 401),
        (auth_headers(pledge.backer_id, "backer"), 403),
        (auth_headers("op", "operator"), 403),
    ):
        assert (await ask(client, pledge, headers)).status_code == status
    assert (await ask(client, pledge, PLEDGES_SERVICE, amount=0)).status_code == 422


async def test_a_backer_refund_that_cannot_be_made_is_reported_failed_to_pledges(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    # An operator's batch refunded the pledge first: the ledger has no room left for the backer's refund,
    # which never reaches Stripe - but the pledge recorded it as pending and must hear how it ended.
    (pledge,) = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [3_000])
    async with app_client(create_app(settings.model_copy(update={"worker_enabled": True}))) as client:
        made = await ask(client, pledge, PLEDGES_SERVICE, refunded_amount=3_000)
        assert made.status_code == 201, made.text

        async def reported() -> dict[str, Any] | None:
            return next((r for r in pledge.refunds.values() if r["status"] == "failed"), None)

        record = await eventually(reported, timeout=20, what="the failure reported to pledges")
    assert (record["refund_id"], record["stripe_refund_id"]) == (made.json()["id"], None)
    assert pledge.stripe_payment_intent_id not in await stripe_refunds_by_intent(stripe_server)


async def test_an_operator_cannot_cancel_a_backer_refund(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    pledge = fake_pledges.add(campaign_id=campaign_id, charged_amount=500, stripe_payment_intent_id="pi_x")
    refund = (await ask(client, pledge, PLEDGES_SERVICE)).json()  # workers off: it stays queued
    url = f"/v1/refund-batches/{refund['batch_id']}"
    operator = auth_headers("op", "operator")

    canceled = await client.post(f"{url}/cancel", headers=operator)

    assert (canceled.status_code, canceled.json()["code"]) == (409, "backer_refund_not_cancelable")
    assert (await client.get(url, headers=operator)).json()["status"] == "running"
