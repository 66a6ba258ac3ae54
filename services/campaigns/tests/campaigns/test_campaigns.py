from __future__ import annotations

import uuid

import httpx

from services.campaigns.tests.factories import (
    Actors,
    campaign_body,
    create_campaign,
    idem,
    in_future,
    live_campaign,
)


async def test_a_creator_creates_a_draft_that_only_they_and_operators_see(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    response = await client.post("/v1/campaigns", json=campaign_body(), headers=actors.creator | idem())
    assert response.status_code == 201
    campaign = response.json()
    assert (campaign["status"], campaign["creator_id"], campaign["revision"]) == ("draft", actors.creator_id, 1)
    assert response.headers["etag"] == '"1"'
    assert response.headers["location"] == f"/v1/campaigns/{campaign['id']}"
    assert campaign["budget_total_amount"] == 100_000
    assert campaign["cap_decision"] == "capped"
    assert campaign["disclosure_policy"] == {
        "amount_raised": "bands",
        "backer_count": "bands",
        "tier_availability": "coarse",
        "reveal_exact_after_close": False,
    }

    url = f"/v1/campaigns/{campaign['id']}"
    assert (await client.get(url, headers=actors.creator)).status_code == 200
    assert (await client.get(url, headers=actors.operator)).status_code == 200
    for headers in ({}, actors.backer, actors.other_creator):
        hidden = await client.get(url, headers=headers)
        assert (hidden.status_code, hidden.json()["code"]) == (404, "campaign_not_found")


async def test_creating_needs_the_creator_role_and_an_idempotency_key(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    assert (await client.post("/v1/campaigns", json=campaign_body(), headers=idem())).status_code == 401
    assert (await client.post("/v1/campaigns", json=campaign_body(), headers=actors.backer | idem())).status_code == 403
    missing_key = await client.post("/v1/campaigns", json=campaign_body(), headers=actors.creator)
    assert (missing_key.status_code, missing_key.json()["code"]) == (400, "idempotency_key_required")


async def test_retrying_a_create_with_the_same_key_creates_one_campaign(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    key, body = idem(), campaign_body()
    first = await client.post("/v1/campaigns", json=body, headers=actors.creator | key)
    again = await client.post("/v1/campaigns", json=body, headers=actors.creator | key)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    listed = await client.get("/v1/campaigns", params={"creator_id": actors.creator_id}, headers=actors.creator)
    assert len(listed.json()["items"]) == 1


async def test_create_validates_money_and_the_cap_decision(client: httpx.AsyncClient, actors: Actors) -> None:
    for bad in (
        campaign_body(goal_amount=100.5),
        campaign_body(goal_amount=0),
        campaign_body(currency="XXX"),
        campaign_body(cap_amount=1_000, goal_amount=5_000),
        campaign_body(cap_amount=500_000, uncapped=True),
        campaign_body(deadline_at="2030-01-01T00:00:00"),  # no time zone
        campaign_body(funding_model="maybe"),
    ):
        response = await client.post("/v1/campaigns", json=bad, headers=actors.creator | idem())
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"
    past = await client.post(
        "/v1/campaigns", json=campaign_body(deadline_at="2020-01-01T00:00:00Z"), headers=actors.creator | idem()
    )
    assert past.json()["code"] == "deadline_in_past"


async def test_edits_need_the_current_etag(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign = await create_campaign(client, actors)
    url = f"/v1/campaigns/{campaign['id']}"
    edited = await client.patch(url, json={"title": "New title"}, headers=actors.creator | {"If-Match": '"1"'})
    assert edited.status_code == 200
    assert (edited.json()["title"], edited.json()["revision"], edited.headers["etag"]) == ("New title", 2, '"2"')
    stale = await client.patch(url, json={"title": "Lost update"}, headers=actors.creator | {"If-Match": '"1"'})
    assert (stale.status_code, stale.json()["code"]) == (412, "revision_mismatch")
    assert (await client.get(url, headers=actors.creator)).json()["title"] == "New title"
    weak = await client.patch(url, json={"description": "x"}, headers=actors.creator | {"If-Match": 'W/"2"'})
    assert weak.status_code == 200


async def test_the_cap_decision_can_switch_between_a_cap_and_no_cap(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign = await create_campaign(client, actors)
    url = f"/v1/campaigns/{campaign['id']}"
    uncapped = await client.patch(url, json={"uncapped": True}, headers=actors.creator | {"If-Match": "*"})
    assert (uncapped.json()["cap_decision"], uncapped.json()["cap_amount"]) == ("uncapped", None)
    capped = await client.patch(url, json={"cap_amount": 300_000}, headers=actors.creator | {"If-Match": "*"})
    assert (capped.json()["cap_decision"], capped.json()["cap_amount"]) == ("capped", 300_000)
    below_goal = await client.patch(url, json={"cap_amount": 50_000}, headers=actors.creator | {"If-Match": "*"})
    assert below_goal.json()["code"] == "cap_below_goal"


async def test_only_the_creator_edits_their_campaign(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, _ = await live_campaign(client, actors)
    url = f"/v1/campaigns/{campaign['id']}"
    other = await client.patch(url, json={"title": "Mine"}, headers=actors.other_creator | {"If-Match": "*"})
    assert (other.status_code, other.json()["code"]) == (403, "not_campaign_creator")
    operator = await client.patch(url, json={"title": "Mine"}, headers=actors.operator | {"If-Match": "*"})
    assert operator.status_code == 403


async def test_a_live_campaign_keeps_its_money_terms(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, _ = await live_campaign(client, actors)
    url = f"/v1/campaigns/{campaign['id']}"
    locked = await client.patch(
        url,
        json={"cap_amount": 900_000, "deadline_at": in_future(40 * 86400)},
        headers=actors.creator | {"If-Match": "*"},
    )
    assert (locked.status_code, locked.json()["code"], locked.json()["fields"]) == (
        409,
        "field_locked",
        ["cap_amount", "deadline_at"],
    )
    wording = await client.patch(
        url,
        json={"description": "Now with more cats.", "disclosure_policy": {"amount_raised": "exact"}},
        headers=actors.creator | {"If-Match": "*"},
    )
    assert wording.status_code == 200
    assert wording.json()["disclosure_policy"]["amount_raised"] == "exact"
    # Sending unchanged values is not a change.
    same = await client.patch(url, json={"goal_amount": 100_000}, headers=actors.creator | {"If-Match": "*"})
    assert same.status_code == 200


async def test_lists_show_each_viewer_what_they_may_see(client: httpx.AsyncClient, actors: Actors) -> None:
    live, _ = await live_campaign(client, actors)
    draft = await create_campaign(client, actors)

    async def ids(headers: dict) -> set[str]:
        response = await client.get("/v1/campaigns", headers=headers)
        assert response.status_code == 200
        return {c["id"] for c in response.json()["items"]}

    assert await ids({}) == {live["id"]}
    assert await ids(actors.backer) == {live["id"]}
    assert await ids(actors.other_creator) == {live["id"]}
    assert await ids(actors.creator) == {live["id"], draft["id"]}
    assert await ids(actors.operator) == {live["id"], draft["id"]}
    drafts = await client.get("/v1/campaigns", params={"status": "draft"}, headers=actors.operator)
    assert [c["id"] for c in drafts.json()["items"]] == [draft["id"]]


async def test_lists_page_with_a_cursor(client: httpx.AsyncClient, actors: Actors) -> None:
    created = [(await create_campaign(client, actors, deadline_at=in_future(86400 * (10 + i))))["id"] for i in range(5)]
    for sort, expected in (("newest", list(reversed(created))), ("deadline", created)):
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, str | int] = {"limit": 2, "sort": sort}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/campaigns", params=params, headers=actors.creator)).json()
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected, sort
    bad = await client.get("/v1/campaigns", params={"cursor": "not-a-cursor"})
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_cursor")


async def test_unknown_campaign_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/campaigns/{uuid.uuid4()}")
    assert (response.status_code, response.json()["code"]) == (404, "campaign_not_found")
