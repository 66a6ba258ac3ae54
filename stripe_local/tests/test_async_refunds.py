"""The refund test cards change state after the fact, with their events:
4000000000007726 refunds go ``pending`` then ``succeeded``; 4000000000005126 refunds go
``succeeded`` then ``failed`` with ``expired_or_canceled_card``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Api, make_settings, serve


async def _paid_intent(api: Api, *, number: str | None = None, token: str | None = None) -> dict[str, Any]:
    if number is not None:
        pm = await api.ok(
            "POST",
            "/v1/payment_methods",
            {"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}},
        )
        payment_method = pm["id"]
    else:
        assert token is not None
        payment_method = token
    return await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 5000,
            "currency": "usd",
            "payment_method": payment_method,
            "confirm": True,
            "payment_method_types": ["card"],
        },
    )


async def _event_types(api: Api, object_id: str) -> list[str]:
    return [e["type"] for e in (await api.local("GET", f"events?object_id={object_id}"))["data"]]


@pytest.mark.parametrize("source", [{"number": "4000000000007726"}, {"token": "pm_card_pendingRefund"}])
async def test_a_pending_refund_succeeds_later_by_itself(tmp_path: Path, source: dict[str, str]) -> None:
    async with serve(make_settings(tmp_path, async_delay_seconds=0.2)) as api:
        pi = await _paid_intent(api, **source)
        refund = await api.ok("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": 2000})
        assert (refund["status"], refund["pending_reason"]) == ("pending", "processing")
        charge = await api.ok("GET", f"/v1/charges/{pi['latest_charge']}")
        assert charge["amount_refunded"] == 2000
        deadline = time.monotonic() + 5
        while (await api.ok("GET", f"/v1/refunds/{refund['id']}"))["status"] == "pending":
            assert time.monotonic() < deadline, "the pending refund never settled"
            await asyncio.sleep(0.05)
        settled = await api.ok("GET", f"/v1/refunds/{refund['id']}")
        assert settled["status"] == "succeeded"
        assert "pending_reason" not in settled
        assert await _event_types(api, refund["id"]) == ["refund.created", "refund.updated", "charge.refund.updated"]
        updated = (await api.ok("GET", "/v1/events", {"type": "refund.updated"}))["data"][0]
        assert updated["data"]["previous_attributes"]["status"] == "pending"
        assert updated["request"] == {"id": None, "idempotency_key": None}


@pytest.mark.parametrize("source", [{"number": "4000000000005126"}, {"token": "pm_card_refundFail"}])
async def test_a_refund_on_the_failing_card_fails_after_succeeding(api: Api, source: dict[str, str]) -> None:
    pi = await _paid_intent(api, **source)
    refund = await api.ok("POST", "/v1/refunds", {"payment_intent": pi["id"]})
    assert refund["status"] == "succeeded"
    assert (await api.ok("GET", f"/v1/charges/{pi['latest_charge']}"))["refunded"] is True
    advanced = await api.local("POST", "advance")
    assert advanced["transitions"] == 1
    failed = await api.ok("GET", f"/v1/refunds/{refund['id']}")
    assert (failed["status"], failed["failure_reason"]) == ("failed", "expired_or_canceled_card")
    assert failed["failure_balance_transaction"].startswith("txn_")
    charge = await api.ok("GET", f"/v1/charges/{pi['latest_charge']}")
    assert (charge["amount_refunded"], charge["refunded"]) == (0, False)
    assert await _event_types(api, refund["id"]) == [
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.refund.updated",
    ]
    again = await api.ok("POST", "/v1/refunds", {"payment_intent": pi["id"]})  # the money is refundable again
    assert again["amount"] == 5000


async def test_ordinary_cards_refund_synchronously_and_nothing_is_scheduled(api: Api) -> None:
    pi = await _paid_intent(api, token="pm_card_visa")
    refund = await api.ok("POST", "/v1/refunds", {"payment_intent": pi["id"]})
    assert refund["status"] == "succeeded"
    assert (await api.local("POST", "advance"))["transitions"] == 0
    assert (await api.ok("GET", f"/v1/refunds/{refund['id']}"))["status"] == "succeeded"


async def test_every_refund_ever_made_is_listed_for_exactly_once_checks(api: Api) -> None:
    pi = await _paid_intent(api, token="pm_card_refundFail")
    first = await api.ok("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": 1000})
    await api.local("POST", "advance")
    second = await api.ok("POST", "/v1/refunds", {"charge": pi["latest_charge"], "amount": 1500})
    listed = await api.local("GET", f"refunds?payment_intent={pi['id']}")
    assert [(r["id"], r["status"]) for r in listed["data"]] == [(first["id"], "failed"), (second["id"], "succeeded")]
    public = await api.ok("GET", "/v1/refunds", {"payment_intent": pi["id"]})
    assert [r["id"] for r in public["data"]] == [second["id"], first["id"]]
    assert public["count"] == 2
