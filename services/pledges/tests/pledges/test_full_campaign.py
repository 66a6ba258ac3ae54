"""A campaign that just refused a pledge for its cap: for ``full_campaign_cache_seconds`` pledges no smaller are
refused by the pledges service itself, stored rejected with the same problem, without asking campaigns;
smaller pledges and, after that moment, every pledge are judged by campaigns again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from services.pledges.app import create_app
from services.pledges.config import Settings
from services.pledges.tests.factories import Backer, idem, live_campaign, pledge_body, service_headers, totals
from shared.testing import app_client

REMEMBERED_SECONDS = 3.0


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings.model_copy(update={"full_campaign_cache_seconds": REMEMBERED_SECONDS}))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(app) as client:
        yield client


async def reservation_status(campaigns: httpx.AsyncClient, campaign_id: str, pledge_id: str) -> int:
    response = await campaigns.get(
        f"/internal/campaigns/{campaign_id}/reservations/{pledge_id}", headers=service_headers()
    )
    return response.status_code


async def test_a_full_campaign_is_remembered_for_a_moment_and_only_for_pledges_no_smaller(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient
) -> None:
    campaign = await live_campaign(campaigns, cap_amount=15_000)  # pledges are 7,000 at least (price + shipping)
    first_backer = Backer()
    first = await client.post("/v1/pledges", json=pledge_body(campaign), headers=first_backer.headers | idem())
    second = await client.post("/v1/pledges", json=pledge_body(campaign), headers=Backer().headers | idem())
    assert (first.status_code, second.status_code) == (201, 201)

    asked = await client.post(
        "/v1/pledges", json=pledge_body(campaign, amount=8_000), headers=Backer().headers | idem()
    )
    assert (asked.status_code, asked.json()["code"]) == (409, "cap_reached")
    remembered_since = time.monotonic()

    # Capacity comes back: the first backer cancels, 8,000 is free again.
    canceled = await client.post(f"/v1/pledges/{first.json()['id']}/cancel", headers=first_backer.headers)
    assert canceled.status_code == 200, canceled.text
    assert (await totals(campaigns, campaign.id))["committed_amount"] == 7_000

    # Within the moment, a pledge as large is refused here, although it would now fit: the same problem, a
    # stored rejected pledge, and no reservation asked of campaigns. Its key replays the same refusal.
    backer, key = Backer(), idem()
    refused = await client.post("/v1/pledges", json=pledge_body(campaign, amount=8_000), headers=backer.headers | key)
    problem = refused.json()
    assert (refused.status_code, problem["code"], problem["detail"]) == (409, "cap_reached", asked.json()["detail"])
    assert problem["pledge_status"] == "rejected"
    assert await reservation_status(campaigns, campaign.id, problem["pledge_id"]) == 404
    shown = await client.get(f"/v1/pledges/{problem['pledge_id']}", headers=backer.headers)
    assert (shown.status_code, shown.json()["status"]) == (200, "rejected")
    replay = await client.post("/v1/pledges", json=pledge_body(campaign, amount=8_000), headers=backer.headers | key)
    assert (replay.status_code, replay.json()["pledge_id"]) == (409, problem["pledge_id"])

    # A smaller pledge is not covered by that refusal: campaigns judges it, and it fits.
    smaller_backer = Backer()
    smaller = await client.post("/v1/pledges", json=pledge_body(campaign), headers=smaller_backer.headers | idem())
    assert smaller.status_code == 201, smaller.text
    assert time.monotonic() - remembered_since < REMEMBERED_SECONDS, "too slow to have checked within the moment"
    canceled = await client.post(f"/v1/pledges/{smaller.json()['id']}/cancel", headers=smaller_backer.headers)
    assert canceled.status_code == 200, canceled.text

    # Once the moment has passed, campaigns is asked again: the same 8,000 pledge is accepted.
    await asyncio.sleep(max(0.0, REMEMBERED_SECONDS - (time.monotonic() - remembered_since)) + 0.1)
    later = await client.post(
        "/v1/pledges", json=pledge_body(campaign, amount=8_000), headers=Backer().headers | idem()
    )
    assert later.status_code == 201, later.text
    assert (await totals(campaigns, campaign.id))["committed_amount"] == 15_000
