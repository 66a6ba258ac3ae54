"""Concurrent pledges on a capped campaign end exactly at the cap; money moves only for accepted pledges."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.pledges.tests.factories import Backer, idem, live_campaign, payment_intents, pledge_body, totals
from stripe_local.testing import StripeLocalProcess


@pytest.mark.parametrize("funding_model", ["flexible", "all_or_nothing"])
async def test_concurrent_pledges_end_exactly_at_the_cap_with_one_payment_per_accepted_pledge(
    client: httpx.AsyncClient,
    campaigns: httpx.AsyncClient,
    stripe_server: StripeLocalProcess,
    funding_model: str,
) -> None:
    # Each pledge is 7,000; the cap holds exactly 5 of them.
    campaign = await live_campaign(campaigns, funding_model=funding_model, cap_amount=35_000, goal_amount=7_000)
    backers = [Backer() for _ in range(12)]

    responses = await asyncio.gather(
        *(client.post("/v1/pledges", json=pledge_body(campaign), headers=b.headers | idem()) for b in backers)
    )

    accepted = [r.json() for r in responses if r.status_code == 201]
    refused = [r.json() for r in responses if r.status_code != 201]
    assert len(accepted) == 5
    assert {(p["status"], p["code"]) for p in refused} == {(409, "cap_reached")}
    campaign_totals = await totals(campaigns, campaign.id)
    assert campaign_totals["committed_amount"] == 35_000
    assert campaign_totals["reserved_amount"] == 0
    assert campaign_totals["consistent"] is True
    for pledge in accepted:
        if funding_model == "flexible":
            [intent] = payment_intents(stripe_server, pledge["id"])
            assert intent["status"] == "succeeded"
        else:
            assert payment_intents(stripe_server, pledge["id"]) == []
            assert pledge["payment"]["card_saved"] is True
    for problem in refused:
        assert payment_intents(stripe_server, problem["pledge_id"]) == []

    reconciliation = await client.get(f"/v1/pledges/campaigns/{campaign.id}/reconciliation", headers=campaign.operator)
    assert reconciliation.status_code == 200, reconciliation.text
    figures = reconciliation.json()
    assert figures["consistent"] is True
    assert (figures["confirmed_pledges_amount"], figures["confirmed_pledges_count"]) == (35_000, 5)
    assert figures["campaign_committed_amount"] == 35_000
