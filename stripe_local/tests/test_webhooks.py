"""Webhook delivery from the durable queue: signed, retried with backoff, timed out, and - when
configured - delivered twice or out of order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import stripe

from .conftest import Api, WebhookReceiver, make_settings, serve

SECRET = "whsec_local_test_secret"


async def _settled_deliveries(api: Api) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        rows: list[dict[str, Any]] = (await api.local("GET", "webhook_deliveries"))["data"]
        if all(r["status"] != "pending" for r in rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.02)


def _settings(tmp_path: Path, receiver: WebhookReceiver, **overrides: Any) -> Any:
    endpoints = [{"url": receiver.url, "secret": SECRET, "enabled_events": ["*"]}]
    return make_settings(tmp_path, webhook_endpoints=endpoints, webhook_retry_base_seconds=0.05, **overrides)


async def test_a_configured_endpoint_gets_every_event_signed_with_its_secret(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    async with serve(_settings(tmp_path, webhook_receiver)) as api:
        customer = await api.ok("POST", "/v1/customers", {"email": "hook@example.com"})
        await webhook_receiver.wait_for(lambda r: len(r.events()) == 1)
        headers, payload, _ = webhook_receiver.deliveries[0]
        event = stripe.Webhook.construct_event(payload.decode(), headers["stripe-signature"], SECRET)
        assert (event.type, event.data.object.id, event.pending_webhooks) == ("customer.created", customer["id"], 1)
        assert headers["content-type"].startswith("application/json")
        stored = await api.ok("GET", f"/v1/events/{event.id}")
        assert stored["pending_webhooks"] == 0  # delivered


async def test_a_failing_endpoint_is_retried_with_growing_backoff(
    tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    webhook_receiver.fail_first = 3
    async with serve(_settings(tmp_path, webhook_receiver)) as api:
        await api.ok("POST", "/v1/customers", {"email": "retry@example.com"})
        started = time.monotonic()
        await webhook_receiver.wait_for(lambda r: len(r.events()) == 1)
        # Backoff 0.05, 0.1, 0.2 seconds between the four attempts.
        assert time.monotonic() - started >= 0.3
        assert [status for _, _, status in webhook_receiver.deliveries] == [500, 500, 500, 200]
        # The receiver has answered; give the dispatcher its turn to record the outcome.
        rows = await _settled_deliveries(api)
        assert [(r["status"], r["attempts"]) for r in rows] == [("delivered", 4)]


async def test_delivery_gives_up_after_the_last_attempt(tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.fail_first = 1000
    async with serve(_settings(tmp_path, webhook_receiver, webhook_max_attempts=3)) as api:
        await api.ok("POST", "/v1/customers", {"email": "dead@example.com"})
        await webhook_receiver.wait_for(lambda r: len(r.deliveries) == 3)
        rows = await _settled_deliveries(api)
        assert [(r["status"], r["attempts"], r["last_status"]) for r in rows] == [("failed", 3, 500)]
        assert len(webhook_receiver.deliveries) == 3


async def test_a_slow_endpoint_times_out_and_is_retried(tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.delay = 1.0
    async with serve(_settings(tmp_path, webhook_receiver, webhook_timeout_seconds=0.2)) as api:
        await api.ok("POST", "/v1/customers", {"email": "slow@example.com"})
        deadline = time.monotonic() + 5
        while True:
            rows = (await api.local("GET", "webhook_deliveries"))["data"]
            if rows and rows[0]["attempts"] >= 1:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert "Timeout" in rows[0]["last_error"]
        webhook_receiver.delay = 0
        await webhook_receiver.wait_for(lambda r: len(r.events()) >= 1)


async def test_duplicates_deliver_the_same_event_twice(tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    async with serve(_settings(tmp_path, webhook_receiver, webhook_duplicate_rate=1.0)) as api:
        await api.ok("POST", "/v1/customers", {"email": "twice@example.com"})
        await webhook_receiver.wait_for(lambda r: len(r.events()) == 2)
        first, second = webhook_receiver.events()
        assert first["id"] == second["id"]


async def test_reordering_delivers_newer_events_first(tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    settings = _settings(tmp_path, webhook_receiver, webhook_reorder=True, webhook_reorder_window_seconds=0.2)
    async with serve(settings) as api:
        await api.ok(
            "POST",
            "/v1/payment_intents",
            {
                "amount": 1000,
                "currency": "usd",
                "confirm": True,
                "payment_method": "pm_card_visa",
                "payment_method_types": ["card"],
            },
        )
        await webhook_receiver.wait_for(lambda r: len(r.events()) == 3)
        received = [e["type"] for e in webhook_receiver.events()]
        assert received == ["payment_intent.succeeded", "charge.succeeded", "payment_intent.created"]
        created = [e["type"] for e in (await api.ok("GET", "/v1/events"))["data"]][::-1]
        assert created == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]


async def test_an_api_endpoint_receives_only_its_enabled_events(api: Api, webhook_receiver: WebhookReceiver) -> None:
    endpoint = await api.ok(
        "POST", "/v1/webhook_endpoints", {"url": webhook_receiver.url, "enabled_events": ["charge.succeeded"]}
    )
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["status"] == "enabled"
    assert "secret" not in await api.ok("GET", f"/v1/webhook_endpoints/{endpoint['id']}")
    await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 1000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_visa",
            "payment_method_types": ["card"],
        },
    )
    await webhook_receiver.wait_for(lambda r: len(r.events()) == 1)
    headers, payload, _ = webhook_receiver.deliveries[0]
    event = stripe.Webhook.construct_event(payload.decode(), headers["stripe-signature"], endpoint["secret"])
    assert event.type == "charge.succeeded"
    deleted = await api.ok("DELETE", f"/v1/webhook_endpoints/{endpoint['id']}")
    assert deleted == {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}
    await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 1000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_visa",
            "payment_method_types": ["card"],
        },
    )
    await api.local("POST", "advance", {"webhooks": True})
    assert len(webhook_receiver.events()) == 1
