"""Many pledges at once, through two replicas of the service sharing one database: the cap holds."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx

from services.campaigns.app import create_app
from services.campaigns.config import Settings
from services.campaigns.tests.factories import Actors, live_campaign, reservation_body, reserve, totals
from shared.testing import app_client

CAP = 40_000
TIER_LIMIT = 30
ATTEMPTS = 60


async def _pledge_once(
    client: httpx.AsyncClient, actors: Actors, campaign_id: str, tier: dict, rng: random.Random
) -> tuple[str, int]:
    # A third reserve with the card already saved (held and committed at once), the others before paying.
    saved_first = rng.random() < 1 / 3
    body = reservation_body(tier, amount=rng.choice([1_000, 1_500, 2_000, 3_000]), confirmed=saved_first)
    response = await reserve(client, actors, campaign_id, body)
    if response.status_code != 201:
        assert response.status_code == 409, response.text
        assert response.json()["code"] in {"cap_reached", "tier_sold_out"}
        return response.json()["code"], 0
    if saved_first:
        assert response.json()["status"] == "confirmed"
        return "confirmed", body["amount"]
    await asyncio.sleep(rng.random() / 100)  # the payment, between reserve and confirm
    url = f"/internal/campaigns/{campaign_id}/reservations/{body['pledge_id']}"
    if rng.random() < 0.2:
        released = await client.post(f"{url}/release", json={"reason": "payment_declined"}, headers=actors.service)
        assert released.status_code == 200, released.text
        return "released", 0
    confirmed = await client.post(f"{url}/confirm", headers=actors.service)
    assert confirmed.status_code == 200, confirmed.text
    return "confirmed", body["amount"]


async def test_concurrent_reservations_on_two_replicas_never_exceed_the_cap(settings: Settings, actors: Actors) -> None:
    rng = random.Random(1234)
    async with app_client(create_app(settings)) as one, app_client(create_app(settings)) as two:
        campaign, [tier] = await live_campaign(
            one,
            actors,
            goal_amount=10_000,
            cap_amount=CAP,
            tiers=[{"price_amount": 1_000, "shipping": [], "quantity_limit": TIER_LIMIT}],
        )
        outcomes = await asyncio.gather(
            *(_pledge_once(one if i % 2 else two, actors, campaign["id"], tier, rng) for i in range(ATTEMPTS))
        )
        state = await totals(two, actors, campaign["id"])
        tier_now = (await one.get(f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}", headers=actors.creator)).json()

    confirmed_sum = sum(amount for outcome, amount in outcomes if outcome == "confirmed")
    confirmed_count = sum(1 for outcome, _ in outcomes if outcome == "confirmed")
    assert state["committed_amount"] <= CAP
    assert state["committed_amount"] == state["confirmed_sum_amount"] == confirmed_sum
    assert state["backer_count"] == state["confirmed_count"] == confirmed_count
    assert (state["reserved_amount"], state["pending_count"]) == (0, 0)
    assert state["consistent"]
    assert tier_now["availability"]["committed_quantity"] == confirmed_count <= TIER_LIMIT
    assert tier_now["availability"]["reserved_quantity"] == 0
    # The run must actually have hit a limit, or it proves nothing about the cap.
    refusals = {outcome for outcome, _ in outcomes} & {"cap_reached", "tier_sold_out"}
    assert refusals, outcomes


async def test_concurrent_retries_of_one_pledge_reserve_once(settings: Settings, actors: Actors) -> None:
    async with app_client(create_app(settings)) as one, app_client(create_app(settings)) as two:
        campaign, [tier] = await live_campaign(one, actors)
        body = reservation_body(tier)
        responses = await asyncio.gather(
            *(reserve(one if i % 2 else two, actors, campaign["id"], body) for i in range(10))
        )
        state = await totals(one, actors, campaign["id"])
    assert sorted(r.status_code for r in responses) == [200] * 9 + [201]
    assert {r.json()["pledge_id"] for r in responses} == {body["pledge_id"]}
    assert (state["pending_count"], state["reserved_amount"]) == (1, body["amount"])


async def test_confirm_and_release_racing_on_two_replicas_count_each_reservation_once(
    settings: Settings, actors: Actors
) -> None:
    """The payment succeeds (confirm) while the backer cancels (release), on different replicas at once:
    whichever wins, the totals count the reservation once, and no call fails (no deadlock, no 500)."""
    async with app_client(create_app(settings)) as one, app_client(create_app(settings)) as two:
        campaign, [tier] = await live_campaign(one, actors, goal_amount=10_000, cap_amount=None, uncapped=True)
        bodies = [reservation_body(tier) for _ in range(12)]
        for body in bodies:
            assert (await reserve(one, actors, campaign["id"], body)).status_code == 201

        async def race(body: dict[str, Any]) -> tuple[httpx.Response, ...]:
            url = f"/internal/campaigns/{campaign['id']}/reservations/{body['pledge_id']}"
            return await asyncio.gather(
                one.post(f"{url}/confirm", headers=actors.service),
                two.post(f"{url}/release", json={"reason": "backer_canceled"}, headers=actors.service),
                one.post(f"{url}/release", json={"reason": "backer_canceled"}, headers=actors.service),
                two.post(f"{url}/confirm", headers=actors.service),
            )

        results = await asyncio.gather(*(race(body) for body in bodies))
        state = await totals(two, actors, campaign["id"])

    for responses in results:
        for response in responses:
            assert response.status_code in (200, 409), response.text
            if response.status_code == 409:
                assert response.json()["code"] == "reservation_released"
    # Release always comes last or wins: every reservation ends released, and nothing is left counted.
    assert (state["committed_amount"], state["reserved_amount"], state["backer_count"]) == (0, 0, 0)
    assert (state["confirmed_count"], state["pending_count"], state["consistent"]) == (0, 0, True)
