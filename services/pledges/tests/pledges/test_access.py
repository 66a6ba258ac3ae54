"""Who sees a pledge: the backer who made it, the campaign's creator, operators. Nobody else."""

from __future__ import annotations

import httpx

from services.pledges.tests.factories import Backer, idem, live_campaign, pledge_body
from shared.testing import auth_headers


async def test_visibility_of_one_pledge(client: httpx.AsyncClient, campaigns: httpx.AsyncClient) -> None:
    campaign = await live_campaign(campaigns)
    backer = Backer()
    pledge = (await client.post("/v1/pledges", json=pledge_body(campaign), headers=backer.headers | idem())).json()
    url = f"/v1/pledges/{pledge['id']}"

    assert (await client.get(url, headers=backer.headers)).status_code == 200
    assert (await client.get(url, headers=campaign.creator)).status_code == 200
    assert (await client.get(url, headers=auth_headers("any-operator", "operator"))).status_code == 200
    other_backer = await client.get(url, headers=Backer().headers)
    other_creator = await client.get(url, headers=auth_headers("someone-else", "creator"))
    assert (other_backer.status_code, other_backer.json()["code"]) == (404, "pledge_not_found")
    assert other_creator.status_code == 404
    assert (await client.get(url)).status_code == 401


async def test_lists_show_a_backer_only_their_own_and_a_creator_only_their_campaign(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient
) -> None:
    campaign = await live_campaign(campaigns)
    backers = [Backer(), Backer()]
    ids = []
    for backer in backers:
        created = await client.post("/v1/pledges", json=pledge_body(campaign), headers=backer.headers | idem())
        ids.append(created.json()["id"])

    mine = await client.get("/v1/pledges", headers=backers[0].headers)
    assert [p["id"] for p in mine.json()["items"]] == [ids[0]]

    url = f"/v1/pledges/campaigns/{campaign.id}"
    by_creator = await client.get(url, headers=campaign.creator)
    by_operator = await client.get(url, headers=auth_headers("op", "operator"))
    assert [p["id"] for p in by_creator.json()["items"]] == ids
    assert [p["id"] for p in by_operator.json()["items"]] == ids
    assert (await client.get(url, headers=auth_headers("someone-else", "creator"))).status_code == 403
    assert (await client.get(url, headers=backers[0].headers)).status_code == 403
    assert (await client.get(url)).status_code == 401


async def test_campaign_listing_pages_with_a_cursor(client: httpx.AsyncClient, campaigns: httpx.AsyncClient) -> None:
    campaign = await live_campaign(campaigns)
    ids = []
    for _ in range(5):
        created = await client.post("/v1/pledges", json=pledge_body(campaign), headers=Backer().headers | idem())
        ids.append(created.json()["id"])

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (
            await client.get(f"/v1/pledges/campaigns/{campaign.id}", params=params, headers=campaign.creator)
        ).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    bad = await client.get(f"/v1/pledges/campaigns/{campaign.id}", params={"cursor": "nope"}, headers=campaign.creator)
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_cursor")
