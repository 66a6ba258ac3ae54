"""The deadline is real: campaigns are created with a deadline a few seconds away (allowed by the minimum
duration setting of one second) and the tests wait for the scheduler to close them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from services.campaigns.app import create_app
from services.campaigns.config import Settings
from services.campaigns.tests.factories import (
    Actors,
    in_future,
    live_campaign,
    outbox_events,
    pledge,
    reservation_body,
    reserve,
    totals,
)
from shared.testing import app_client

# Leaves the lifecycle (create, review, launch: about a dozen requests) a margin over the one-second minimum.
DEADLINE_SECONDS = 3.0


async def _wait_for_status(
    client: httpx.AsyncClient, actors: Actors, campaign_id: str, wanted: set[str], timeout: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        campaign = (await client.get(f"/v1/campaigns/{campaign_id}", headers=actors.creator)).json()
        if campaign["status"] in wanted:
            return campaign  # type: ignore[no-any-return]
        await asyncio.sleep(0.1)
    raise AssertionError(f"campaign {campaign_id} never reached {wanted}")


async def _soon_live(client: httpx.AsyncClient, actors: Actors, **overrides: Any) -> tuple[dict, dict]:
    campaign, [tier] = await live_campaign(
        client, actors, deadline_at=in_future(DEADLINE_SECONDS), goal_amount=10_000, cap_amount=50_000, **overrides
    )
    return campaign, tier


async def test_each_campaign_closes_by_itself_with_the_outcome_its_model_and_total_give(
    client: httpx.AsyncClient, actors: Actors, database_url: str
) -> None:
    # (funding model, pledged) -> outcome; the goal is 10,000. The campaigns share the waiting time.
    cases = [
        ("all_or_nothing", 10_000, "succeeded"),
        ("all_or_nothing", 9_999, "failed"),
        ("flexible", 7_000, "succeeded"),
    ]
    launched = []
    for funding_model, amount, _ in cases:
        campaign, tier = await _soon_live(client, actors, funding_model=funding_model)
        await pledge(client, actors, campaign["id"], tier, amount=amount)
        launched.append(campaign)
    closed = [await _wait_for_status(client, actors, c["id"], {"succeeded", "failed"}) for c in launched]
    assert [c["status"] for c in closed] == [outcome for *_, outcome in cases]
    assert all(c["closed_at"] is not None and c["allowed_actions"] == [] for c in closed)

    events = await outbox_events(database_url, "campaign.closed")
    assert sorted(
        (e["payload"]["campaign_id"], e["payload"]["outcome"], e["payload"]["funding_model"]) for e in events
    ) == sorted((c["id"], outcome, model) for c, (model, _, outcome) in zip(launched, cases, strict=True))
    log = (await client.get(f"/v1/campaigns/{launched[0]['id']}/audit-log", headers=actors.operator)).json()
    close = [e for e in log if e["to_status"] == "succeeded"]
    assert [(e["from_status"], e["actor_role"], e["reason"]) for e in close] == [("live", "system", "deadline")]


async def test_close_waits_for_a_pending_reservation_and_counts_it_once_confirmed(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, tier = await _soon_live(client, actors)
    body = reservation_body(tier, amount=10_000)
    assert (await reserve(client, actors, campaign["id"], body)).status_code == 201
    await asyncio.sleep(DEADLINE_SECONDS + 0.5)
    waiting = (await client.get(f"/v1/campaigns/{campaign['id']}", headers=actors.creator)).json()
    assert (waiting["status"], waiting["accepts_pledges"]) == ("live", False)
    late = await reserve(client, actors, campaign["id"], reservation_body(tier))
    assert late.json()["code"] == "campaign_not_accepting_pledges"

    confirmed = await client.post(
        f"/internal/campaigns/{campaign['id']}/reservations/{body['pledge_id']}/confirm", headers=actors.service
    )
    assert confirmed.status_code == 200
    closed = await _wait_for_status(client, actors, campaign["id"], {"succeeded", "failed"})
    assert closed["status"] == "succeeded"


async def test_unconfirmed_reservations_expire_and_give_capacity_back(settings: Settings, actors: Actors) -> None:
    quick = settings.model_copy(update={"reservation_ttl_seconds": 1})
    async with app_client(create_app(quick)) as client:
        campaign, [tier] = await live_campaign(client, actors, goal_amount=10_000, cap_amount=10_000)
        body = reservation_body(tier, amount=10_000)
        assert (await reserve(client, actors, campaign["id"], body)).status_code == 201
        assert (await reserve(client, actors, campaign["id"], reservation_body(tier))).json()["code"] == "cap_reached"
        await asyncio.sleep(1.6)
        url = f"/internal/campaigns/{campaign['id']}/reservations/{body['pledge_id']}"
        expired = (await client.get(url, headers=actors.service)).json()
        assert (expired["status"], expired["release_reason"]) == ("expired", "expired")
        state = await totals(client, actors, campaign["id"])
        assert (state["reserved_amount"], state["pending_count"], state["consistent"]) == (0, 0, True)
        late = await client.post(f"{url}/confirm", headers=actors.service)
        assert late.json()["code"] == "reservation_expired"
        assert (await reserve(client, actors, campaign["id"], reservation_body(tier))).status_code == 201


async def test_two_replicas_close_a_campaign_exactly_once(
    settings: Settings, actors: Actors, database_url: str
) -> None:
    fast = settings.model_copy(update={"scheduler_poll_seconds": 0.02})
    async with app_client(create_app(fast)) as one, app_client(create_app(fast)) as two:
        campaigns = []
        for _ in range(3):
            campaign, tier = await _soon_live(one, actors)
            await pledge(two, actors, campaign["id"], tier, amount=10_000)
            campaigns.append((campaign, tier))
        for campaign, _ in campaigns:
            await _wait_for_status(one, actors, campaign["id"], {"succeeded", "failed"})
        await asyncio.sleep(0.3)  # both schedulers keep polling: nothing more may happen
        logs = [
            (await one.get(f"/v1/campaigns/{c['id']}/audit-log", headers=actors.operator)).json() for c, _ in campaigns
        ]
    events = await outbox_events(database_url, "campaign.closed")
    assert sorted(e["payload"]["campaign_id"] for e in events) == sorted(c["id"] for c, _ in campaigns)
    for log in logs:
        assert len([e for e in log if e["to_status"] == "succeeded"]) == 1
