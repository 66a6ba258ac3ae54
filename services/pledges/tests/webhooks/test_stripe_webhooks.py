"""The Stripe webhook inbox: signature on the raw body, duplicates ignored, out-of-order deliveries handled."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI

from services.pledges.tests.conftest import WEBHOOK_SECRET
from services.pledges.tests.events.test_campaign_closed import close
from services.pledges.tests.factories import Backer, idem, live_campaign, payment_intents, pledge_body, service_headers
from services.pledges.webhooks.service import webhook_service
from services.pledges.worker import worker as worker_module
from stripe_local.testing import StripeLocalProcess

URL = "/v1/webhooks/stripe/pledges"


def signed(event: dict[str, Any], secret: str = WEBHOOK_SECRET) -> tuple[bytes, dict[str, str]]:
    payload = orjson.dumps(event)
    timestamp = int(time.time())
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, {"Stripe-Signature": f"t={timestamp},v1={signature}", "Content-Type": "application/json"}


async def deliver(client: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    payload, headers = signed(event)
    return await client.post(URL, content=payload, headers=headers)


def synthetic(event_type: str, obj: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "type": event_type,
        "created": created or int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "api_version": "2025-01-27.acacia",
    }


async def test_signature_is_checked_on_the_raw_body(client: httpx.AsyncClient) -> None:
    event = synthetic("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent", "status": "succeeded"})
    payload, headers = signed(event)

    tampered = await client.post(URL, content=payload.replace(b"succeeded", b"canceled!"), headers=headers)
    wrong_secret = await client.post(URL, content=payload, headers=signed(event, "whsec_wrong")[1])
    unsigned = await client.post(URL, content=payload, headers={"Content-Type": "application/json"})
    good = await client.post(URL, content=payload, headers=headers)

    for refused in (tampered, wrong_secret, unsigned):
        assert (refused.status_code, refused.json()["code"]) == (400, "invalid_signature")
    assert (good.status_code, good.json()) == (200, {"status": "accepted"})


async def test_a_redelivered_event_is_acknowledged_and_ignored_and_unknown_types_are_ignored(
    client: httpx.AsyncClient,
) -> None:
    event = synthetic("refund.updated", {"id": "re_unknown", "object": "refund", "status": "succeeded"})
    first = await deliver(client, event)
    second = await deliver(client, event)
    other = await deliver(client, synthetic("customer.created", {"id": "cus_1", "object": "customer"}))

    assert (first.json(), second.json(), other.json()) == (
        {"status": "accepted"},
        {"status": "duplicate"},
        {"status": "ignored"},
    )


async def test_refund_events_delivered_out_of_order_end_in_the_latest_state(
    client: httpx.AsyncClient, app: FastAPI, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    # A flexible pledge with a card whose refunds succeed, then fail later (Stripe's refundFail test card),
    # refunded by this service itself: its campaign was canceled.
    campaign = await live_campaign(campaigns, funding_model="flexible")
    backer = Backer()
    created = await client.post(
        "/v1/pledges", json=pledge_body(campaign, payment_method="pm_card_refundFail"), headers=backer.headers | idem()
    )
    pledge_id = created.json()["id"]
    await close(client, campaign, "canceled")
    await app.state.pledge_worker.run_once()
    canceled = await client.get(f"/v1/pledges/{pledge_id}", headers=backer.headers)
    assert canceled.json()["status"] == "canceled", canceled.text
    assert canceled.json()["payment"]["refunded_amount"] == 7_000
    [intent] = payment_intents(stripe_server, pledge_id)
    stripe_server.local("POST", "advance", json={})  # the asynchronous succeeded -> failed transition
    refund_events = [
        e
        for e in stripe_server.local("GET", "events")["data"]
        if e["type"].startswith("refund.") and e["data"]["object"]["payment_intent"] == intent["id"]
    ]
    assert {e["type"] for e in refund_events} >= {"refund.created", "refund.failed"}

    for event in sorted(refund_events, key=lambda e: e["created"], reverse=True):  # newest first
        assert (await deliver(client, event)).status_code == 200

    shown = (await client.get(f"/v1/pledges/{pledge_id}", headers=backer.headers)).json()
    [refund] = shown["refunds"]
    assert refund["status"] == "failed"
    assert shown["payment"]["refunded_amount"] == 0


async def test_a_dispute_marks_the_pledge_disputed(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    pledge = (await client.post("/v1/pledges", json=pledge_body(campaign), headers=Backer().headers | idem())).json()
    [intent] = payment_intents(stripe_server, pledge["id"])

    dispute = {"id": "dp_1", "object": "dispute", "payment_intent": intent["id"], "status": "needs_response"}
    assert (await deliver(client, synthetic("charge.dispute.created", dispute))).status_code == 200

    seen = (await client.get(f"/internal/pledges/{pledge['id']}", headers=service_headers())).json()
    assert seen["disputed"] is True


async def test_an_event_whose_processing_failed_stays_in_the_inbox_and_the_worker_processes_it(
    client: httpx.AsyncClient,
    app: FastAPI,
    campaigns: httpx.AsyncClient,
    stripe_server: StripeLocalProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    pledge = (await client.post("/v1/pledges", json=pledge_body(campaign), headers=Backer().headers | idem())).json()
    [intent] = payment_intents(stripe_server, pledge["id"])
    event = synthetic("charge.dispute.created", {"id": "dp_2", "object": "dispute", "payment_intent": intent["id"]})

    async def broken(*_args: object) -> None:
        raise RuntimeError("database hiccup")

    with monkeypatch.context() as patch:
        patch.setattr(webhook_service, "_dispute", broken)
        assert (await deliver(client, event)).json() == {"status": "accepted"}  # stored, acknowledged
    assert (await client.get(f"/internal/pledges/{pledge['id']}", headers=service_headers())).json()[
        "disputed"
    ] is False

    monkeypatch.setattr(worker_module, "EVENT_RETRY_AFTER_SECONDS", 0)
    assert (await app.state.pledge_worker.run_once()).events == 1
    assert (await client.get(f"/internal/pledges/{pledge['id']}", headers=service_headers())).json()["disputed"] is True
    assert (await deliver(client, event)).json() == {"status": "duplicate"}
