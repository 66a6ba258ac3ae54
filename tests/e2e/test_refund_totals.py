"""A refund reaches the campaign's figures: the backer cancels a charged pledge, the refunds service refunds it,
pledges records it and publishes `pledge.refunded`, its outbox relay delivers the event to campaigns, and the
creator sees the refunded total — the public does not."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.pledges.models import OutboxEvent
from shared.db import Database
from shared.testing import auth_headers, mentions_number
from tests.e2e.flows import launch_campaign, ok, pledge
from tools.stack import Stack

pytestmark = pytest.mark.e2e

PRICE = 4_321  # odd: no goal, budget, band edge or rounded figure of the campaign equals it
DEADLINE_SECONDS = 30


def _funding(gateway: httpx.Client, campaign_id: str, headers: dict[str, str]) -> dict[str, Any]:
    return ok(gateway.get(f"/v1/campaigns/{campaign_id}", headers=headers))["funding"]  # type: ignore[no-any-return]


async def _outbox_rows(database_url: str, pledge_id: str) -> list[OutboxEvent]:
    db = Database(database_url)
    try:
        async with db.read_sessions() as session:
            rows = (await session.execute(select(OutboxEvent).where(OutboxEvent.type == "pledge.refunded"))).scalars()
            return [row for row in rows if row.payload["pledge_id"] == pledge_id]
    finally:
        await db.dispose()


def test_a_backers_refund_shows_in_the_creators_figures_and_never_in_public(
    gateway: httpx.Client, stack: Stack
) -> None:
    live = launch_campaign(gateway, funding_model="flexible", price_amount=PRICE)
    backer = "e2e-refund-total-erin"
    created = ok(pledge(gateway, live, backer), 201)
    before = ok(gateway.get(f"/v1/campaigns/{live.id}", headers=live.creator))
    assert before["funding"]["refunded_amount"] == 0
    mine = {"creator_id": before["creator_id"]}

    ok(gateway.post(f"/v1/pledges/{created['id']}/cancel", headers=auth_headers(backer, "backer")))

    deadline = time.monotonic() + DEADLINE_SECONDS
    refunded = _funding(gateway, live.id, live.creator)["refunded_amount"]
    while refunded != PRICE and time.monotonic() < deadline:
        time.sleep(0.25)
        refunded = _funding(gateway, live.id, live.creator)["refunded_amount"]
    assert refunded == PRICE, "the creator's view never showed the refund"
    assert _funding(gateway, live.id, live.operator)["refunded_amount"] == PRICE
    listed = ok(gateway.get("/v1/campaigns", params=mine, headers=live.creator))
    assert [c["funding"]["refunded_amount"] for c in listed["items"]] == [PRICE]

    for headers in ({}, auth_headers(backer, "backer")):
        read = gateway.get(f"/v1/campaigns/{live.id}", headers=headers)
        public_list = gateway.get("/v1/campaigns", params=mine, headers=headers)
        for response in (read, public_list):
            assert response.status_code == 200, response.text
            assert not mentions_number(response.text, PRICE), response.text
        assert read.json()["funding"]["refunded_amount"] is None
        assert [c["funding"]["refunded_amount"] for c in public_list.json()["items"]] == [None]

    # Delivered, and recorded as delivered: nothing of this pledge is left for the relay to send.
    deadline = time.monotonic() + DEADLINE_SECONDS
    rows = asyncio.run(_outbox_rows(stack.config.database_url("pledges"), created["id"]))
    while any(row.delivered_at is None for row in rows) and time.monotonic() < deadline:
        time.sleep(0.25)
        rows = asyncio.run(_outbox_rows(stack.config.database_url("pledges"), created["id"]))
    assert [(row.payload["refunded_amount"], row.delivered_to) for row in rows] == [(PRICE, ["campaigns"])]
    assert all(row.delivered_at is not None for row in rows)


def test_a_refund_that_fails_after_succeeding_comes_off_the_creators_figures(
    gateway: httpx.Client, stack: Stack
) -> None:
    """Stripe's refundFail card: the refund succeeds, then fails (the card was closed; the money went back).
    Pledges announces both changes (revision 1 up, revision 2 down), the relay delivers both, and the creator's
    refunded total ends back at 0, as does the pledge's."""
    price = 4_327
    live = launch_campaign(gateway, funding_model="flexible", price_amount=price)
    backer = "e2e-refund-total-fay"
    created = ok(pledge(gateway, live, backer, payment_method="pm_card_refundFail"), 201)
    ok(gateway.post(f"/v1/pledges/{created['id']}/cancel", headers=auth_headers(backer, "backer")))

    def delivered() -> list[OutboxEvent]:
        return asyncio.run(_outbox_rows(stack.config.database_url("pledges"), created["id"]))

    deadline = time.monotonic() + DEADLINE_SECONDS
    rows = delivered()
    while (len(rows) < 2 or any(row.delivered_at is None for row in rows)) and time.monotonic() < deadline:
        time.sleep(0.25)
        rows = delivered()
    changes = sorted((row.payload["revision"], row.payload["refunded_amount"], row.delivered_to) for row in rows)
    assert changes == [(1, price, ["campaigns"]), (2, 0, ["campaigns"])]
    assert _funding(gateway, live.id, live.creator)["refunded_amount"] == 0
    shown = ok(gateway.get(f"/v1/pledges/{created['id']}", headers=auth_headers(backer, "backer")))
    assert (shown["payment"]["refunded_amount"], [r["status"] for r in shown["refunds"]]) == (0, ["failed"])
