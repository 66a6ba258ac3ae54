from __future__ import annotations

import time
import uuid

import httpx
import orjson

from services.refunds.tests.conftest import WEBHOOK_SECRET
from stripe_local.webhooks import signature_header

URL = "/v1/webhooks/stripe/refunds"


def event(event_type: str, refund_status: str = "succeeded", *, item_id: str | None = None) -> dict:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {
            "object": {
                "id": f"re_{uuid.uuid4().hex}",
                "object": "refund",
                "status": refund_status,
                "metadata": {"refund_item_id": item_id or str(uuid.uuid4())},
            }
        },
    }


def signed(payload: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    return {"Stripe-Signature": signature_header(payload, secret, int(time.time())), "Content-Type": "application/json"}


async def test_a_bad_or_missing_signature_is_refused(client: httpx.AsyncClient) -> None:
    payload = orjson.dumps(event("refund.updated"))
    forged = await client.post(URL, content=payload, headers=signed(payload, "whsec_not_ours"))
    assert forged.status_code == 400
    assert forged.json()["code"] == "invalid_signature"
    missing = await client.post(URL, content=payload)
    assert missing.status_code == 400
    tampered = await client.post(URL, content=payload + b" ", headers=signed(payload))
    assert tampered.status_code == 400


async def test_each_event_is_taken_once_and_other_types_are_acknowledged(client: httpx.AsyncClient) -> None:
    payload = orjson.dumps(event("refund.updated"))
    first = await client.post(URL, content=payload, headers=signed(payload))
    again = await client.post(URL, content=payload, headers=signed(payload))
    assert (first.status_code, first.json()["status"]) == (200, "accepted")
    assert (again.status_code, again.json()["status"]) == (200, "duplicate")

    other = orjson.dumps(event("payment_intent.succeeded"))
    ignored = await client.post(URL, content=other, headers=signed(other))
    assert (ignored.status_code, ignored.json()["status"]) == (200, "ignored")
