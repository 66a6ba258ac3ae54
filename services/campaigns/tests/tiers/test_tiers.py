from __future__ import annotations

import httpx

from services.campaigns.tests.factories import (
    Actors,
    create_campaign,
    create_tier,
    idem,
    live_campaign,
    outbox_events,
    pledge,
    post_ok,
    reservation_body,
    reserve,
    tier_body,
)


async def test_editing_a_live_tier_creates_versions_and_keeps_the_old_ones(
    client: httpx.AsyncClient, actors: Actors, database_url: str
) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    url = f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}"
    v1_hash = tier["terms"]["content_hash"]

    typo = await client.patch(
        url, json={"description": "One copy, boxed."}, headers=actors.creator | {"If-Match": '"1"'}
    )
    assert typo.status_code == 200
    v2 = typo.json()["terms"]
    assert (v2["version"], v2["material"], v2["change_reasons"]) == (2, False, [])
    assert v2["content_hash"] != v1_hash

    later = await client.patch(
        url,
        json={"estimated_delivery": "2027-12", "price_amount": 6_000},
        headers=actors.creator | {"If-Match": typo.headers["etag"]},
    )
    v3 = later.json()["terms"]
    assert (v3["version"], v3["material"]) == (3, True)
    assert v3["change_reasons"] == ["price_increased", "delivery_later"]

    versions = (await client.get(f"{url}/versions")).json()
    assert [(v["version"], v["price_amount"]) for v in versions] == [(1, 5_000), (2, 5_000), (3, 6_000)]
    first = (await client.get(f"{url}/versions/1")).json()
    assert (first["content_hash"], first["estimated_delivery"]) == (v1_hash, "2027-06")
    assert (await client.get(f"{url}/versions/9")).json()["code"] == "tier_version_not_found"

    events = await outbox_events(database_url, "tier.terms_changed")
    assert len(events) == 1  # the typo fix is not material
    payload = events[0]["payload"]
    assert payload == {
        "campaign_id": campaign["id"],
        "tier_id": tier["id"],
        "previous_version": 2,
        "previous_content_hash": v2["content_hash"],
        "new_version": 3,
        "new_content_hash": v3["content_hash"],
        "reasons": ["price_increased", "delivery_later"],
        "changed_at": payload["changed_at"],
    }


async def test_sending_the_same_terms_creates_no_version(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    url = f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}"
    same = await client.patch(url, json={"price_amount": 5_000}, headers=actors.creator | {"If-Match": '"1"'})
    assert (same.json()["current_version"], same.json()["revision"]) == (1, 1)


async def test_pledges_on_an_old_version_are_refused_after_an_edit(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    url = f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}"
    await client.patch(url, json={"price_amount": 5_500}, headers=actors.creator | {"If-Match": '"1"'})
    refused = await reserve(client, actors, campaign["id"], reservation_body(tier, amount=10_000))
    assert (refused.status_code, refused.json()["code"], refused.json()["current_version"]) == (
        409,
        "terms_changed",
        2,
    )


async def test_a_stale_if_match_is_412_and_a_missing_one_is_refused(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign = await create_campaign(client, actors)
    tier = await create_tier(client, actors, campaign["id"])
    url = f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}"
    first = await client.patch(url, json={"title": "A"}, headers=actors.creator | {"If-Match": '"1"'})
    assert first.headers["etag"] == '"2"'
    stale = await client.patch(url, json={"title": "B"}, headers=actors.creator | {"If-Match": '"1"'})
    assert (stale.status_code, stale.json()["code"], stale.headers["etag"]) == (412, "revision_mismatch", '"2"')
    missing = await client.patch(url, json={"title": "B"}, headers=actors.creator)
    assert missing.status_code == 422
    assert (await client.get(url, headers=actors.creator)).json()["terms"]["title"] == "A"

    campaign_url = f"/v1/campaigns/{campaign['id']}"
    stale_campaign = await client.patch(campaign_url, json={"title": "X"}, headers=actors.creator | {"If-Match": '"9"'})
    assert stale_campaign.status_code == 412


async def test_only_the_creator_edits_tiers(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    url = f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}"
    other = await client.patch(url, json={"title": "Mine"}, headers=actors.other_creator | {"If-Match": "*"})
    assert (other.status_code, other.json()["code"]) == (403, "not_campaign_creator")
    add = await client.post(f"/v1/campaigns/{campaign['id']}/tiers", json=tier_body(), headers=actors.backer | idem())
    assert add.status_code == 403


async def test_tiers_are_locked_while_in_review_and_after_close(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign = await create_campaign(client, actors)
    tier = await create_tier(client, actors, campaign["id"])
    await post_ok(client, f"/v1/campaigns/{campaign['id']}/submit", actors.creator)
    url = f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}"
    locked = await client.patch(url, json={"title": "Late"}, headers=actors.creator | {"If-Match": "*"})
    assert (locked.status_code, locked.json()["code"]) == (409, "tiers_locked")


async def test_a_launched_tier_cannot_be_deleted_and_its_limit_not_cut_below_claims(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [tier] = await live_campaign(client, actors, tiers=[{"quantity_limit": 5}])
    url = f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}"
    assert (await client.delete(url, headers=actors.creator)).json()["code"] == "tier_in_use"
    await pledge(client, actors, campaign["id"], tier)
    await pledge(client, actors, campaign["id"], tier)
    cut = await client.patch(url, json={"quantity_limit": 1}, headers=actors.creator | {"If-Match": "*"})
    assert (cut.status_code, cut.json()["code"]) == (409, "quantity_below_claimed")
    ok = await client.patch(url, json={"quantity_limit": 2}, headers=actors.creator | {"If-Match": "*"})
    assert ok.json()["availability"]["status"] == "sold_out"
    unlimited = await client.patch(url, json={"quantity_limit": None}, headers=actors.creator | {"If-Match": "*"})
    assert unlimited.json()["availability"] == {
        "status": "available",
        "remaining_quantity": None,
        "reserved_quantity": 0,
        "committed_quantity": 2,
    }


async def test_a_draft_tier_can_be_deleted(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign = await create_campaign(client, actors)
    tier = await create_tier(client, actors, campaign["id"])
    url = f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}"
    assert (await client.delete(url, headers=actors.creator)).status_code == 204
    assert (await client.get(url, headers=actors.creator)).status_code == 404
    assert (await client.get(f"/v1/campaigns/{campaign['id']}/tiers", headers=actors.creator)).json() == []


async def test_tier_creation_validates_the_terms(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign = await create_campaign(client, actors)
    url = f"/v1/campaigns/{campaign['id']}/tiers"
    for bad in (
        tier_body(items=[]),
        tier_body(estimated_delivery="2027-13"),
        tier_body(price_amount=12.5),
        tier_body(shipping=[{"region": "US", "shipping_amount": 1}, {"region": "US", "shipping_amount": 2}]),
        tier_body(items=[{"name": "A"}, {"name": "A"}]),
    ):
        response = await client.post(url, json=bad, headers=actors.creator | idem())
        assert response.status_code == 422, bad
        assert response.json()["code"] == "validation_error"
