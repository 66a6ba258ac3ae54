"""State is in SQLite, committed before each answer: a SIGKILL loses nothing acknowledged."""

from __future__ import annotations

import gc
import time
from pathlib import Path

import httpx

from stripe_local.config import Settings
from stripe_local.testing import StripeLocalProcess

from .conftest import WebhookReceiver, serve

AUTH = {"Authorization": "Bearer sk_test_local"}


def _post(server: StripeLocalProcess, path: str, data: dict[str, str], key: str | None = None) -> httpx.Response:
    headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
    return httpx.post(f"{server.url}{path}", data=data, headers=headers, timeout=10)


def _get(server: StripeLocalProcess, path: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers=AUTH, timeout=10)


def test_objects_and_saved_answers_survive_sigkill(tmp_path: Path) -> None:
    server = StripeLocalProcess(db_path=tmp_path / "stripe.sqlite3").start()
    try:
        params = {
            "amount": "3000",
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": "true",
            "payment_method_types[0]": "card",
            "metadata[pledge_id]": "p-9",
        }
        created = _post(server, "/v1/payment_intents", params, key="pledge:9:charge")
        assert created.status_code == 200
        server.kill()
        server.start()
        again = _get(server, f"/v1/payment_intents/{created.json()['id']}")
        assert again.json() == created.json()
        replay = _post(server, "/v1/payment_intents", params, key="pledge:9:charge")
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.content == created.content
        events = _get(server, "/v1/events").json()["data"]
        assert {e["type"] for e in events} == {"payment_intent.created", "charge.succeeded", "payment_intent.succeeded"}
    finally:
        server.stop()


def test_a_scheduled_refund_transition_survives_sigkill(tmp_path: Path) -> None:
    env = {"STRIPE_LOCAL_ASYNC_DELAY_SECONDS": "0.5"}
    server = StripeLocalProcess(db_path=tmp_path / "stripe.sqlite3", env=env).start()
    try:
        pi = _post(
            server,
            "/v1/payment_intents",
            {
                "amount": "3000",
                "currency": "usd",
                "confirm": "true",
                "payment_method": "pm_card_pendingRefund",
                "payment_method_types[0]": "card",
            },
        ).json()
        refund = _post(server, "/v1/refunds", {"payment_intent": pi["id"]}).json()
        assert refund["status"] == "pending"
        server.kill()
        server.start()
        deadline = time.monotonic() + 10
        while _get(server, f"/v1/refunds/{refund['id']}").json()["status"] == "pending":
            assert time.monotonic() < deadline, "the transition was lost"
            time.sleep(0.1)
    finally:
        server.stop()


async def test_undelivered_webhooks_survive_sigkill(tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    import asyncio
    import json

    webhook_receiver.fail_first = 10**6
    env = {
        "STRIPE_LOCAL_WEBHOOK_ENDPOINTS": json.dumps([{"url": webhook_receiver.url, "secret": "whsec_k"}]),
        "STRIPE_LOCAL_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
    }
    server = StripeLocalProcess(db_path=tmp_path / "stripe.sqlite3", env=env)
    await asyncio.to_thread(server.start)
    try:
        customer = (await asyncio.to_thread(_post, server, "/v1/customers", {"email": "k@example.com"})).json()
        await webhook_receiver.wait_for(lambda r: len(r.deliveries) >= 1)
        await asyncio.to_thread(server.kill)
        webhook_receiver.fail_first = 0
        webhook_receiver.deliveries.clear()
        await asyncio.to_thread(server.start)
        await webhook_receiver.wait_for(lambda r: len(r.events()) >= 1)
        assert webhook_receiver.events()[0]["data"]["object"]["id"] == customer["id"]
    finally:
        await asyncio.to_thread(server.stop)


async def test_stored_objects_are_frozen_after_a_full_collection_and_thawed_when_stopped(settings: Settings) -> None:
    """The cache of stored objects is most of this server's heap: after a full collection it is frozen, so the
    next full collections (whole-loop pauses) do not walk it again."""
    gc.unfreeze()
    async with serve(settings) as api:
        customer = await api.ok("POST", "/v1/customers", {"email": "a@example.com"})
        assert api.app is not None
        cached = api.app.db._cache[customer["id"]]

        def walked() -> bool:
            return any(obj is cached for generation in range(3) for obj in gc.get_objects(generation))

        assert walked()  # stored after start-up: still young
        gc.collect()
        assert not walked()  # survived a full collection: frozen
        assert (await api.ok("GET", f"/v1/customers/{customer['id']}"))["email"] == "a@example.com"
    assert gc.get_freeze_count() == 0
    assert walked()
