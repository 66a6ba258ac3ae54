"""Concurrent requests: group commit keeps every request's effects, and handlers see each other's
changes in order, so concurrent refunds can never refund more than was paid."""

from __future__ import annotations

import asyncio

from .conftest import Api


async def test_concurrent_refunds_never_exceed_the_charge(api: Api) -> None:
    pi = await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 5000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_visa",
            "payment_method_types": ["card"],
        },
    )
    responses = await asyncio.gather(
        *(
            api.post("/v1/refunds", {"payment_intent": pi["id"], "amount": 1000}, Idempotency_Key=f"r{i}")
            for i in range(12)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 5 + [400] * 7
    refunds = await api.local("GET", f"refunds?payment_intent={pi['id']}")
    assert sum(r["amount"] for r in refunds["data"]) == 5000
    charge = await api.ok("GET", f"/v1/charges/{pi['latest_charge']}")
    assert (charge["amount_refunded"], charge["refunded"]) == (5000, True)


async def test_concurrent_creates_are_committed_in_shared_batches(api: Api) -> None:
    assert api.app is not None
    before = api.app.committer.batches
    responses = await asyncio.gather(
        *(api.post("/v1/customers", {"email": f"c{i}@example.com"}, Idempotency_Key=f"c{i}") for i in range(40))
    )
    assert {r.status_code for r in responses} == {200}
    batches = api.app.committer.batches - before
    assert 1 <= batches < 40  # several requests shared a transaction
    listed = await api.ok("GET", "/v1/customers", {"limit": 100})
    assert len(listed["data"]) == 40
    # What was acknowledged is on disk, not only in the cache.
    api.app.db.invalidate_cache()
    assert (await api.ok("GET", f"/v1/customers/{responses[0].json()['id']}"))["email"] == "c0@example.com"
