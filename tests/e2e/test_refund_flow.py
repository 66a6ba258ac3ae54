"""Operators refund a whole campaign through the gateway: real pledges, real charges at the local Stripe
server, the real refunds and pledges services talking to each other."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from shared.testing import auth_headers
from tests.e2e.flows import launch_campaign, ok, pledge
from tools.stack import Stack

pytestmark = pytest.mark.e2e

PRICE = 50_000  # 12 pledges: 600,000, above the default 500,000 second-approval threshold


def _refunds_at_stripe(stack: Stack, payment_intent: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.config.url('stripe')}/_local/refunds", params={"payment_intent": payment_intent})
    return ok(response)["data"]  # type: ignore[no-any-return]


def test_a_batch_refunds_every_charged_pledge_exactly_once(gateway: httpx.Client, stack: Stack) -> None:
    live = launch_campaign(gateway, funding_model="flexible", price_amount=PRICE, cap_amount=None)
    backers = [f"e2e-refund-{i}" for i in range(12)]
    pledges = [ok(pledge(gateway, live, backer), 201) for backer in backers]

    alice, bob = auth_headers("e2e-op-alice", "operator"), auth_headers("e2e-op-bob", "operator")
    creator_try = gateway.post(
        "/v1/refund-batches",
        json={"campaign_id": live.id, "reason": "Project canceled"},
        headers=live.creator | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert creator_try.status_code == 403
    preview = ok(
        gateway.post(
            "/v1/refund-batches",
            json={"campaign_id": live.id, "reason": "Project canceled"},
            headers=alice | {"Idempotency-Key": uuid.uuid4().hex},
        ),
        201,
    )
    assert preview["status"] == "preview"
    assert preview["item_count"] == 12
    assert preview["requires_second_approval"] is True
    batch = f"/v1/refund-batches/{preview['id']}"
    assert gateway.post(f"{batch}/approve", headers=alice).status_code == 403  # not her own large batch
    ok(gateway.post(f"{batch}/approve", headers=bob))
    ok(gateway.post(f"{batch}/start", headers=alice))

    deadline = time.monotonic() + 60
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = ok(gateway.get(batch, headers=alice))
        if state["status"] == "completed":
            break
        time.sleep(0.5)
    assert state["status"] == "completed", state

    for backer, made in zip(backers, pledges, strict=True):
        mine = ok(gateway.get(f"/v1/pledges/{made['id']}", headers=auth_headers(backer, "backer")))
        assert mine["status"] == "refunded", mine
        assert [r["amount"] for r in mine["refunds"]] == [PRICE]
        intents = ok(
            httpx.get(
                f"{stack.config.url('stripe')}/_local/payment_intents", params={"metadata[pledge_id]": made["id"]}
            )
        )["data"]
        assert len(intents) == 1
        refunds = _refunds_at_stripe(stack, intents[0]["id"])
        assert len(refunds) == 1  # exactly once at Stripe
        assert refunds[0]["amount"] == PRICE

    report = gateway.get(f"{batch}/report", params={"format": "csv"}, headers=alice)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/csv")
    assert len(report.text.strip().splitlines()) == 1 + 12
    assert gateway.get(f"{batch}/report", headers=live.creator).status_code in (403, 404)
    assert gateway.get(f"{batch}/report").status_code == 401


def test_a_selection_the_pledges_service_refuses_is_a_422_not_an_outage(gateway: httpx.Client) -> None:
    live = launch_campaign(gateway, funding_model="flexible")
    response = gateway.post(
        "/v1/refund-batches",
        json={"campaign_id": live.id, "reason": "Bad filter", "selection": {"type": "filter", "status": "no-such"}},
        headers=auth_headers("e2e-op-carol", "operator") | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_selection"
