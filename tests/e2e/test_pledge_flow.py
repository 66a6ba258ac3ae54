"""Backers pledge through the gateway; money moves at the local Stripe server exactly as it should."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import httpx
import pytest

from shared.testing import auth_headers, mentions_number
from tests.e2e.flows import launch_campaign, ok, pledge
from tools.stack import Stack

pytestmark = pytest.mark.e2e


def stripe_local(stack: Stack, resource: str, **params: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.config.url('stripe')}/_local/{resource}", params=params, timeout=10)
    return ok(response)["data"]  # type: ignore[no-any-return]


def _intents(stack: Stack, pledge_id: str) -> list[dict[str, Any]]:
    return stripe_local(stack, "payment_intents", **{"metadata[pledge_id]": pledge_id})


def test_a_flexible_pledge_is_charged_once_and_shows_its_terms(gateway: httpx.Client, stack: Stack) -> None:
    live = launch_campaign(gateway, funding_model="flexible")
    key = uuid.uuid4().hex
    first = pledge(gateway, live, "e2e-alice", key=key)
    body = ok(first, 201)
    again = ok(pledge(gateway, live, "e2e-alice", key=key), 201)  # a retry of the same request
    assert again["id"] == body["id"]
    intents = _intents(stack, body["id"])
    assert len(intents) == 1
    assert intents[0]["status"] == "succeeded"
    assert intents[0]["amount"] == live.tier["terms"]["price_amount"]

    mine = ok(gateway.get(f"/v1/pledges/{body['id']}", headers=auth_headers("e2e-alice", "backer")))
    assert mine["terms"]["content_hash"] == live.tier["terms"]["content_hash"]
    assert gateway.get(f"/v1/pledges/{body['id']}", headers=auth_headers("e2e-mallory", "backer")).status_code in (
        403,
        404,
    )
    campaign = ok(gateway.get(f"/v1/campaigns/{live.id}", headers=live.creator))
    assert campaign["funding"]["amount_raised_amount"] == live.tier["terms"]["price_amount"]


def test_a_declined_card_is_a_402_and_takes_no_capacity(gateway: httpx.Client, stack: Stack) -> None:
    live = launch_campaign(gateway, funding_model="flexible", quantity_limit=1)
    declined = pledge(gateway, live, "e2e-bob", payment_method="pm_card_chargeDeclined")
    assert declined.status_code == 402
    assert declined.headers["content-type"] == "application/problem+json"
    assert declined.json()["decline_code"] == "generic_decline"
    # The only unit is free again: the next backer gets it.
    ok(pledge(gateway, live, "e2e-carl"), 201)


def test_concurrent_pledges_stop_exactly_at_the_cap(gateway: httpx.Client, stack: Stack) -> None:
    price = 5_000
    live = launch_campaign(gateway, funding_model="flexible", cap_amount=3 * price, price_amount=price)
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda i: pledge(gateway, live, f"e2e-rush-{i}"), range(8)))
    accepted = [r.json() for r in responses if r.status_code == 201]
    refused = [r for r in responses if r.status_code != 201]
    assert len(accepted) == 3
    assert all(r.status_code == 409 and r.json()["code"] == "cap_reached" for r in refused), [r.text for r in refused]
    for refusal in refused:
        assert not mentions_number(refusal.text, 3 * price)  # the cap's figure does not leak through the refusal
    charged = [i for p in accepted for i in _intents(stack, p["id"])]
    assert len(charged) == 3
    campaign = ok(gateway.get(f"/v1/campaigns/{live.id}", headers=live.creator))
    assert campaign["funding"]["amount_raised_amount"] == 3 * price


def test_an_all_or_nothing_campaign_charges_saved_cards_only_after_it_succeeds(
    gateway: httpx.Client, stack: Stack
) -> None:
    price = 5_000
    live = launch_campaign(
        gateway,
        funding_model="all_or_nothing",
        goal_amount=2 * price,
        price_amount=price,
        deadline_in=timedelta(seconds=6),
    )
    pledges = [ok(pledge(gateway, live, f"e2e-aon-{i}"), 201) for i in range(2)]
    for p in pledges:
        assert _intents(stack, p["id"]) == []  # nothing charged before the deadline
    deadline = time.monotonic() + 40
    statuses: list[str] = []
    while time.monotonic() < deadline:
        statuses = [
            ok(gateway.get(f"/v1/pledges/{p['id']}", headers=auth_headers(f"e2e-aon-{i}", "backer")))["status"]
            for i, p in enumerate(pledges)
        ]
        if all(s == "collected" for s in statuses):
            break
        time.sleep(0.5)
    assert statuses == ["collected", "collected"]
    for p in pledges:
        intents = _intents(stack, p["id"])
        assert len(intents) == 1
        assert intents[0]["status"] == "succeeded"
        assert intents[0]["amount"] == price
    assert ok(gateway.get(f"/v1/campaigns/{live.id}", headers=live.creator))["status"] == "succeeded"


def test_a_backer_cancels_a_flexible_pledge_and_the_refunds_service_refunds_it_once(
    gateway: httpx.Client, stack: Stack
) -> None:
    live = launch_campaign(gateway, funding_model="flexible")
    backer = auth_headers("e2e-cancel-dora", "backer")
    created = ok(pledge(gateway, live, "e2e-cancel-dora"), 201)
    price = live.tier["terms"]["price_amount"]
    raised = ok(gateway.get(f"/v1/campaigns/{live.id}", headers=live.creator))["funding"]["amount_raised_amount"]
    assert raised == price

    canceled = ok(gateway.post(f"/v1/pledges/{created['id']}/cancel", headers=backer))

    assert canceled["status"] == "canceled"
    [asked] = canceled["refunds"]  # recorded at once, settled by the refunds service's workers
    assert (asked["amount"], asked["batch_id"] is not None) == (price, True)
    campaign = ok(gateway.get(f"/v1/campaigns/{live.id}", headers=live.creator))
    assert campaign["funding"]["amount_raised_amount"] == 0  # the capacity is released

    deadline = time.monotonic() + 30
    shown = canceled
    while shown["refunds"][0]["status"] == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        shown = ok(gateway.get(f"/v1/pledges/{created['id']}", headers=backer))
    assert (shown["status"], shown["payment"]["refunded_amount"]) == ("canceled", price)
    [settled] = shown["refunds"]
    assert (settled["refund_id"], settled["status"]) == (asked["refund_id"], "succeeded")

    [intent] = _intents(stack, created["id"])
    [refund] = stripe_local(stack, "refunds", payment_intent=intent["id"])
    assert (refund["id"], refund["amount"], refund["status"]) == (settled["stripe_refund_id"], price, "succeeded")
    # Sent by the refunds service (its item, its batch of one), not by the pledges service directly.
    assert refund["metadata"]["refund_item_id"] == settled["refund_id"]
    assert (refund["metadata"]["refund_batch_id"], refund["metadata"]["refund_kind"]) == (asked["batch_id"], "backer")

    again = ok(gateway.post(f"/v1/pledges/{created['id']}/cancel", headers=backer))
    assert again["refunds"] == shown["refunds"]
    time.sleep(1.0)  # the refunds workers poll several times meanwhile
    assert len(stripe_local(stack, "refunds", payment_intent=intent["id"])) == 1
