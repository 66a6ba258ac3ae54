from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from services.campaigns.app import create_app
from services.campaigns.config import Settings
from services.campaigns.tests.factories import (
    Actors,
    create_campaign,
    create_tier,
    live_campaign,
    pledge,
    reservation_body,
    reserve,
    totals,
)
from shared.testing import app_client, mentions_number


def _url(campaign_id: str, pledge_id: str = "", action: str = "") -> str:
    url = f"/internal/campaigns/{campaign_id}/reservations"
    if pledge_id:
        url += f"/{pledge_id}"
    if action:
        url += f"/{action}"
    return url


async def test_reserve_confirm_moves_the_amount_from_pending_to_committed(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    body = reservation_body(tier, amount=9_000)
    reserved = await reserve(client, actors, campaign["id"], body)
    assert reserved.status_code == 201
    assert reserved.json()["status"] == "pending"
    assert (await totals(client, actors, campaign["id"]))["reserved_amount"] == 9_000

    confirmed = await client.post(_url(campaign["id"], body["pledge_id"], "confirm"), headers=actors.service)
    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "confirmed"
    state = await totals(client, actors, campaign["id"])
    assert (state["reserved_amount"], state["committed_amount"], state["backer_count"]) == (0, 9_000, 1)
    assert state["consistent"]


async def test_a_confirmed_reserve_holds_and_commits_in_one_call(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors, goal_amount=10_000, cap_amount=20_000)
    body = reservation_body(tier, amount=13_000, confirmed=True)
    reserved = await reserve(client, actors, campaign["id"], body)
    assert reserved.status_code == 201, reserved.text
    assert reserved.json()["status"] == "confirmed"
    assert reserved.json()["confirmed_at"] is not None
    state = await totals(client, actors, campaign["id"])
    assert (state["reserved_amount"], state["committed_amount"], state["backer_count"]) == (0, 13_000, 1)
    assert (state["confirmed_count"], state["pending_count"], state["consistent"]) == (1, 0, True)

    again = await reserve(client, actors, campaign["id"], body)  # a repeat: the same reservation, nothing more
    assert (again.status_code, again.json()) == (200, reserved.json())
    confirm = await client.post(_url(campaign["id"], body["pledge_id"], "confirm"), headers=actors.service)
    assert (confirm.status_code, confirm.json()["status"]) == (200, "confirmed")
    # The cap counts what was committed this way, and a refusal commits nothing.
    refused = await reserve(client, actors, campaign["id"], reservation_body(tier, amount=8_000, confirmed=True))
    assert (refused.status_code, refused.json()["code"]) == (409, "cap_reached")
    fits = await reserve(client, actors, campaign["id"], reservation_body(tier, amount=7_000, confirmed=True))
    assert fits.status_code == 201
    state = await totals(client, actors, campaign["id"])
    assert (state["committed_amount"], state["backer_count"], state["consistent"]) == (20_000, 2, True)

    released = await client.post(_url(campaign["id"], body["pledge_id"], "release"), headers=actors.service)
    assert released.json()["status"] == "released"
    state = await totals(client, actors, campaign["id"])
    assert (state["committed_amount"], state["backer_count"], state["consistent"]) == (7_000, 1, True)


async def test_a_confirmed_reserve_repeating_a_pending_one_confirms_it(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    body = reservation_body(tier, amount=9_000)
    assert (await reserve(client, actors, campaign["id"], body)).json()["status"] == "pending"
    confirmed = await reserve(client, actors, campaign["id"], body | {"confirmed": True})
    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "confirmed")
    state = await totals(client, actors, campaign["id"])
    assert (state["reserved_amount"], state["committed_amount"], state["backer_count"]) == (0, 9_000, 1)
    assert state["consistent"]


async def test_repeating_a_reservation_with_the_same_pledge_id_returns_the_first(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    body = reservation_body(tier)
    first = await reserve(client, actors, campaign["id"], body)
    again = await reserve(client, actors, campaign["id"], body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert (await totals(client, actors, campaign["id"]))["pending_count"] == 1

    reused = await reserve(client, actors, campaign["id"], body | {"amount": body["amount"] + 1})
    assert reused.status_code == 409
    assert reused.json()["code"] == "pledge_id_reused"


async def test_confirm_and_release_are_idempotent(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    confirmed = await pledge(client, actors, campaign["id"], tier)
    again = await client.post(_url(campaign["id"], confirmed["pledge_id"], "confirm"), headers=actors.service)
    assert again.status_code == 200
    assert (await totals(client, actors, campaign["id"]))["committed_amount"] == confirmed["amount"]

    for _ in range(2):
        released = await client.post(
            _url(campaign["id"], confirmed["pledge_id"], "release"),
            json={"reason": "backer_canceled"},
            headers=actors.service,
        )
        assert released.status_code == 200
        assert released.json()["status"] == "released"
        assert released.json()["release_reason"] == "backer_canceled"
    state = await totals(client, actors, campaign["id"])
    assert (state["committed_amount"], state["backer_count"], state["consistent"]) == (0, 0, True)

    late_confirm = await client.post(_url(campaign["id"], confirmed["pledge_id"], "confirm"), headers=actors.service)
    assert late_confirm.status_code == 409
    assert late_confirm.json()["code"] == "reservation_released"


async def test_the_cap_counts_pending_reservations(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors, goal_amount=10_000, cap_amount=20_000)
    first = await reserve(client, actors, campaign["id"], reservation_body(tier, amount=13_000))
    assert first.status_code == 201
    refused = await reserve(client, actors, campaign["id"], reservation_body(tier, amount=8_000))
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "cap_reached"
    assert refused.headers["content-type"] == "application/problem+json"
    # No figure in the refusal: neither the cap, the totals nor what is left.
    for figure in (20_000, 13_000, 7_000, 8_000):
        assert not mentions_number(refused.text, figure)
    fits = await reserve(client, actors, campaign["id"], reservation_body(tier, amount=7_000))
    assert fits.status_code == 201


async def test_released_capacity_can_be_reserved_again(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors, goal_amount=10_000, cap_amount=10_000)
    body = reservation_body(tier, amount=10_000)
    assert (await reserve(client, actors, campaign["id"], body)).status_code == 201
    assert (await reserve(client, actors, campaign["id"], reservation_body(tier))).json()["code"] == "cap_reached"
    released = await client.post(_url(campaign["id"], body["pledge_id"], "release"), headers=actors.service)
    assert released.status_code == 200
    assert (await reserve(client, actors, campaign["id"], reservation_body(tier))).status_code == 201


@pytest.mark.parametrize("confirmed", [False, True], ids=["pending", "confirmed"])
async def test_tier_quantity_and_per_backer_limits(client: httpx.AsyncClient, actors: Actors, confirmed: bool) -> None:
    """The same limits whether the reservation is held pending or held and committed at once."""
    campaign, [limited, per_backer] = await live_campaign(
        client,
        actors,
        uncapped=True,
        cap_amount=None,
        tiers=[{"title": "Early bird", "quantity_limit": 2}, {"title": "Deluxe", "per_backer_limit": 1}],
    )

    def body(tier: dict, **overrides: object) -> dict:
        return reservation_body(tier, confirmed=confirmed, **overrides)

    assert (await reserve(client, actors, campaign["id"], body(limited))).status_code == 201
    assert (await reserve(client, actors, campaign["id"], body(limited))).status_code == 201
    sold_out = await reserve(client, actors, campaign["id"], body(limited))
    assert (sold_out.status_code, sold_out.json()["code"]) == (409, "tier_sold_out")

    first = body(per_backer, backer_id="backer-7")
    assert (await reserve(client, actors, campaign["id"], first)).status_code == 201
    second = await reserve(client, actors, campaign["id"], body(per_backer, backer_id="backer-7"))
    assert (second.status_code, second.json()["code"]) == (409, "backer_limit_reached")
    other = await reserve(client, actors, campaign["id"], body(per_backer, backer_id="backer-8"))
    assert other.status_code == 201
    state = await totals(client, actors, campaign["id"])
    held = (4, 0) if confirmed else (0, 4)
    assert (state["confirmed_count"], state["pending_count"], state["consistent"]) == (*held, True)
    # Releasing gives the backer's allowance back.
    await client.post(_url(campaign["id"], first["pledge_id"], "release"), headers=actors.service)
    again = await reserve(client, actors, campaign["id"], body(per_backer, backer_id="backer-7"))
    assert again.status_code == 201


async def test_only_a_live_campaign_accepts_reservations(client: httpx.AsyncClient, actors: Actors) -> None:
    draft = await create_campaign(client, actors)
    tier = await create_tier(client, actors, draft["id"])
    refused = await reserve(client, actors, draft["id"], reservation_body(tier))
    assert (refused.status_code, refused.json()["code"]) == (409, "campaign_not_accepting_pledges")

    campaign, [live_tier] = await live_campaign(client, actors)
    suspended = await client.post(
        f"/v1/campaigns/{campaign['id']}/suspend", json={"reason": "investigating"}, headers=actors.operator
    )
    assert suspended.status_code == 200
    refused = await reserve(client, actors, campaign["id"], reservation_body(live_tier))
    assert refused.json()["code"] == "campaign_not_accepting_pledges"


async def test_a_pending_reservation_cannot_be_confirmed_once_the_campaign_is_suspended(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    body = reservation_body(tier)
    assert (await reserve(client, actors, campaign["id"], body)).status_code == 201
    await client.post(f"/v1/campaigns/{campaign['id']}/suspend", json={"reason": "fraud"}, headers=actors.operator)
    refused = await client.post(_url(campaign["id"], body["pledge_id"], "confirm"), headers=actors.service)
    assert (refused.status_code, refused.json()["code"]) == (409, "campaign_not_accepting_pledges")
    state = await totals(client, actors, campaign["id"])
    assert (state["pending_count"], state["committed_amount"], state["consistent"]) == (1, 0, True)


async def test_terms_version_currency_shipping_and_minimum_amount_are_checked(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    stale = await reserve(client, actors, campaign["id"], reservation_body(tier, tier_version=7))
    assert (stale.status_code, stale.json()["code"], stale.json()["current_version"]) == (409, "terms_changed", 1)
    wrong_currency = await reserve(client, actors, campaign["id"], reservation_body(tier, currency="EUR"))
    assert (wrong_currency.status_code, wrong_currency.json()["code"]) == (422, "currency_mismatch")
    nowhere = await reserve(client, actors, campaign["id"], reservation_body(tier, shipping_region="JP"))
    assert nowhere.json()["code"] == "shipping_region_unavailable"
    # 5,000 price + 2,000 shipping to FR: 6,999 is too little, 7,000 is enough.
    short = await reserve(client, actors, campaign["id"], reservation_body(tier, shipping_region="FR", amount=6_999))
    assert short.json()["code"] == "amount_below_minimum"
    ok = await reserve(client, actors, campaign["id"], reservation_body(tier, shipping_region="FR", amount=7_000))
    assert ok.status_code == 201
    state = await totals(client, actors, campaign["id"])
    assert (state["pending_count"], state["reserved_amount"]) == (1, 7_000)


async def test_unknown_campaign_tier_or_reservation_is_404(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    missing = str(uuid.uuid4())
    assert (await reserve(client, actors, missing, reservation_body(tier))).json()["code"] == "campaign_not_found"
    wrong_tier = await reserve(client, actors, campaign["id"], reservation_body(tier, tier_id=missing))
    assert wrong_tier.json()["code"] == "tier_not_found"
    for action in ("confirm", "release"):
        response = await client.post(_url(campaign["id"], missing, action), headers=actors.service)
        assert (response.status_code, response.json()["code"]) == (404, "reservation_not_found")


async def test_reservation_routes_require_a_service_token(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    body = reservation_body(tier)
    anonymous = await client.post(_url(campaign["id"]), json=body)
    assert anonymous.status_code == 401
    for headers in (actors.backer, actors.operator, actors.creator):
        response = await client.post(_url(campaign["id"]), json=body, headers=headers)
        assert response.status_code == 403
    snapshot = await client.get(f"/internal/campaigns/{campaign['id']}", headers=actors.backer)
    assert snapshot.status_code == 403


async def test_campaign_snapshot_for_services_has_exact_figures_and_capabilities(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [tier] = await live_campaign(client, actors, funding_model="flexible")
    await pledge(client, actors, campaign["id"], tier, amount=12_345)
    response = await client.get(f"/internal/campaigns/{campaign['id']}", headers=actors.service)
    assert response.status_code == 200
    snapshot = response.json()
    assert snapshot["status"] == "live"
    assert snapshot["accepts_pledges"] is True
    assert snapshot["capabilities"] == {
        "accepts_pledges": True,
        "terms_editable": True,
        "may_charge": False,
        "may_refund": True,
        "closed": False,
    }
    assert (snapshot["committed_amount"], snapshot["backer_count"], snapshot["funding_model"]) == (
        12_345,
        1,
        "flexible",
    )


async def test_reservations_are_listed_for_reconciliation(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    confirmed = [await pledge(client, actors, campaign["id"], tier) for _ in range(3)]
    pending = reservation_body(tier)
    await reserve(client, actors, campaign["id"], pending)
    url = _url(campaign["id"])

    seen, cursor = [], None
    while True:
        params: dict[str, str | int] = {"status": "confirmed", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(url, params=params, headers=actors.service)).json()
        seen += [r["pledge_id"] for r in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [r["pledge_id"] for r in confirmed]
    everything = (await client.get(url, headers=actors.service)).json()["items"]
    assert [r["status"] for r in everything] == ["confirmed"] * 3 + ["pending"]
    assert (await client.get(url, headers=actors.creator)).status_code == 403


async def test_a_repeat_is_answered_with_the_reservation_even_once_the_cap_is_reached(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [tier] = await live_campaign(client, actors, goal_amount=10_000, cap_amount=10_000)
    body = reservation_body(tier, amount=10_000)
    first = await reserve(client, actors, campaign["id"], body)
    assert first.status_code == 201
    # The cap is full now, but a retry of the call that filled it is that same reservation, not a refusal.
    again = await reserve(client, actors, campaign["id"], body)
    assert (again.status_code, again.json()) == (200, first.json())
    reused = await reserve(client, actors, campaign["id"], body | {"backer_id": "someone-else"})
    assert (reused.status_code, reused.json()["code"]) == (409, "pledge_id_reused")


async def test_a_refused_reservation_holds_nothing(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(
        client,
        actors,
        goal_amount=10_000,
        cap_amount=10_000,
        tiers=[{"price_amount": 1_000, "shipping": [], "per_backer_limit": 1, "quantity_limit": 5}],
    )
    filled = await reserve(client, actors, campaign["id"], reservation_body(tier, amount=9_000))
    assert filled.status_code == 201
    refused = await reserve(client, actors, campaign["id"], reservation_body(tier, backer_id="backer-9", amount=5_000))
    assert refused.json()["code"] == "cap_reached"
    state = await totals(client, actors, campaign["id"])
    assert (state["reserved_amount"], state["pending_count"], state["consistent"]) == (9_000, 1, True)
    tier_now = (await client.get(f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}", headers=actors.creator)).json()
    assert tier_now["availability"]["reserved_quantity"] == 1
    # The refused backer's allowance (one per backer) is intact.
    released = await client.post(_url(campaign["id"], filled.json()["pledge_id"], "release"), headers=actors.service)
    assert released.status_code == 200
    accepted = await reserve(client, actors, campaign["id"], reservation_body(tier, backer_id="backer-9"))
    assert accepted.status_code == 201, accepted.text


async def test_a_reservation_past_its_expiry_cannot_be_confirmed_even_before_the_sweeper_runs(
    settings: Settings, actors: Actors
) -> None:
    quick = settings.model_copy(update={"reservation_ttl_seconds": 1, "scheduler_enabled": False})
    async with app_client(create_app(quick)) as client:
        campaign, [tier] = await live_campaign(client, actors)
        body = reservation_body(tier)
        assert (await reserve(client, actors, campaign["id"], body)).status_code == 201
        await asyncio.sleep(1.1)
        refused = await client.post(_url(campaign["id"], body["pledge_id"], "confirm"), headers=actors.service)
        assert (refused.status_code, refused.json()["code"]) == (409, "reservation_expired")
        state = await totals(client, actors, campaign["id"])
    assert (state["committed_amount"], state["reserved_amount"], state["pending_count"]) == (0, body["amount"], 1)
    assert state["consistent"]
