from __future__ import annotations

import httpx

from services.campaigns.tests.factories import (
    CHECKLIST,
    Actors,
    approve,
    create_campaign,
    create_tier,
    idem,
    live_campaign,
    outbox_events,
    post_ok,
)
from shared.testing import auth_headers


async def _submitted(client: httpx.AsyncClient, actors: Actors) -> str:
    campaign = await create_campaign(client, actors)
    await create_tier(client, actors, campaign["id"])
    await post_ok(client, f"/v1/campaigns/{campaign['id']}/submit", actors.creator)
    return campaign["id"]


async def test_submission_lists_every_missing_item_at_once(client: httpx.AsyncClient, actors: Actors) -> None:
    response = await client.post(
        "/v1/campaigns",
        json={"title": "Bare", "currency": "EUR", "goal_amount": 1000, "funding_model": "flexible"},
        headers=actors.creator | idem(),
    )
    campaign_id = response.json()["id"]
    refused = await client.post(f"/v1/campaigns/{campaign_id}/submit", headers=actors.creator)
    assert refused.status_code == 422
    problem = refused.json()
    assert problem["code"] == "submission_incomplete"
    assert {item["field"] for item in problem["missing"]} == {
        "description",
        "risks_and_challenges",
        "cap_amount",
        "budget",
        "deadline_at",
        "tiers",
    }
    assert (await client.get(f"/v1/campaigns/{campaign_id}", headers=actors.creator)).json()["status"] == "draft"


async def test_submission_refuses_a_deadline_out_of_range(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign = await create_campaign(client, actors, deadline_at="2099-01-01T00:00:00Z")
    await create_tier(client, actors, campaign["id"])
    refused = await client.post(f"/v1/campaigns/{campaign['id']}/submit", headers=actors.creator)
    assert [item["field"] for item in refused.json()["missing"]] == ["deadline_at"]


async def test_an_explicit_no_cap_decision_is_accepted_and_visible(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, _ = await live_campaign(client, actors, cap_amount=None, uncapped=True)
    public = (await client.get(f"/v1/campaigns/{campaign['id']}")).json()
    assert (public["cap_decision"], public["cap_amount"]) == ("uncapped", None)


async def test_the_full_review_is_audited_step_by_step(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, _ = await live_campaign(client, actors)
    log = await client.get(f"/v1/campaigns/{campaign['id']}/audit-log", headers=actors.operator)
    assert log.status_code == 200
    entries = log.json()
    transitions = [(e["from_status"], e["to_status"], e["actor_role"]) for e in entries if e["action"] == "transition"]
    assert transitions == [
        ("draft", "submitted", "creator"),
        ("submitted", "in_review", "operator"),
        ("in_review", "approved", "operator"),
        ("approved", "live", "creator"),
    ]
    by_action = {e["action"] for e in entries}
    assert {"created", "checklist_recorded", "transition"} <= by_action
    approved = next(e for e in entries if e["to_status"] == "approved")
    assert approved["actor_id"] == actors.operator_id
    assert [e["details"]["item"] for e in entries if e["action"] == "checklist_recorded"] == list(CHECKLIST)


async def test_only_operators_read_the_audit_log(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, _ = await live_campaign(client, actors)
    for headers in ({}, actors.backer, actors.creator):
        response = await client.get(f"/v1/campaigns/{campaign['id']}/audit-log", headers=headers)
        assert response.status_code in (401, 403)


async def test_an_operator_never_reviews_their_own_campaign(client: httpx.AsyncClient) -> None:
    both = auth_headers("dual-role", "creator", "operator")
    campaign = (await client.post("/v1/campaigns", json=_complete_campaign(), headers=both | idem())).json()
    await client.post(f"/v1/campaigns/{campaign['id']}/tiers", json=_tier(), headers=both | idem())
    await post_ok(client, f"/v1/campaigns/{campaign['id']}/submit", both)
    refused = await client.post(f"/v1/campaigns/{campaign['id']}/start-review", headers=both)
    assert (refused.status_code, refused.json()["code"]) == (403, "self_review_forbidden")


async def test_approval_requires_every_checklist_item_passed(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign_id = await _submitted(client, actors)
    base = f"/v1/campaigns/{campaign_id}"
    await post_ok(client, f"{base}/start-review", actors.operator)
    await client.put(f"{base}/review-checklist/identity_verified", json={"result": "passed"}, headers=actors.operator)
    await client.put(
        f"{base}/review-checklist/budget_plausible",
        json={"result": "failed", "note": "costs look low"},
        headers=actors.operator,
    )
    refused = await client.post(f"{base}/approve", headers=actors.operator)
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "checklist_incomplete"
    assert problem["failed_items"] == ["budget_plausible"]
    assert set(problem["missing_items"]) == {"prototype_evidence", "risks_disclosed", "fulfilment_plan"}

    checklist = (await client.get(f"{base}/review-checklist", headers=actors.operator)).json()
    assert {e["item"]: e["note"] for e in checklist["entries"]}["budget_plausible"] == "costs look low"


async def test_transitions_outside_the_whitelist_are_409(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign = await create_campaign(client, actors)
    launch = await client.post(f"/v1/campaigns/{campaign['id']}/launch", headers=actors.creator)
    assert (launch.status_code, launch.json()["code"]) == (409, "transition_not_allowed")
    assert launch.json()["allowed_actions"] == ["submit", "cancel"]
    review = await client.post(f"/v1/campaigns/{campaign['id']}/start-review", headers=actors.operator)
    assert review.json()["code"] == "transition_not_allowed"


async def test_roles_are_enforced_on_each_action(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign_id = await _submitted(client, actors)
    base = f"/v1/campaigns/{campaign_id}"
    assert (await client.post(f"{base}/start-review", headers=actors.creator)).status_code == 403
    assert (await client.post(f"{base}/start-review")).status_code == 401
    # Another creator cannot even see someone else's unlaunched campaign.
    other = await client.post(f"{base}/cancel", headers=actors.other_creator)
    assert (other.status_code, other.json()["code"]) == (404, "campaign_not_found")


async def test_changes_requested_then_resubmitted_opens_a_new_checklist_round(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign_id = await _submitted(client, actors)
    base = f"/v1/campaigns/{campaign_id}"
    await post_ok(client, f"{base}/start-review", actors.operator)
    await client.put(f"{base}/review-checklist/identity_verified", json={"result": "passed"}, headers=actors.operator)
    await post_ok(client, f"{base}/request-changes", actors.operator, {"reason": "Show the prototype."})
    record = (await client.get(f"{base}/vetting-record", headers=actors.creator)).json()
    assert (record["status"], record["feedback"]) == ("changes_requested", "Show the prototype.")

    await post_ok(client, f"{base}/submit", actors.creator)
    await approve(client, actors, campaign_id)
    checklist = (await client.get(f"{base}/review-checklist", headers=actors.operator)).json()
    assert checklist["review_round"] == 2
    assert len(checklist["entries"]) == 5


async def test_a_material_edit_of_an_approved_campaign_sends_it_back_to_review(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign_id = await _submitted(client, actors)
    await approve(client, actors, campaign_id)
    url = f"/v1/campaigns/{campaign_id}"
    current = await client.get(url, headers=actors.creator)
    wording = await client.patch(
        url, json={"title": "Better title"}, headers=actors.creator | {"If-Match": current.headers["etag"]}
    )
    assert wording.json()["status"] == "approved"
    goal = await client.patch(
        url, json={"goal_amount": 150_000}, headers=actors.creator | {"If-Match": wording.headers["etag"]}
    )
    assert goal.status_code == 200
    assert goal.json()["status"] == "submitted"
    log = (await client.get(f"{url}/audit-log", headers=actors.operator)).json()
    back = [e for e in log if e["details"].get("action") == "return_to_review"]
    assert back
    assert back[0]["details"]["fields"] == ["goal_amount"]


async def test_a_material_tier_change_of_an_approved_campaign_sends_it_back_to_review(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign = await create_campaign(client, actors)
    tier = await create_tier(client, actors, campaign["id"])
    await post_ok(client, f"/v1/campaigns/{campaign['id']}/submit", actors.creator)
    await approve(client, actors, campaign["id"])
    url = f"/v1/campaigns/{campaign['id']}/tiers/{tier['id']}"
    typo = await client.patch(url, json={"description": "One copy!"}, headers=actors.creator | {"If-Match": '"1"'})
    assert typo.status_code == 200
    status = (await client.get(f"/v1/campaigns/{campaign['id']}", headers=actors.creator)).json()["status"]
    assert status == "approved"
    pricier = await client.patch(url, json={"price_amount": 6_000}, headers=actors.creator | {"If-Match": '"2"'})
    assert pricier.status_code == 200
    status = (await client.get(f"/v1/campaigns/{campaign['id']}", headers=actors.creator)).json()["status"]
    assert status == "submitted"


async def test_only_approved_campaigns_launch(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign_id = await _submitted(client, actors)
    refused = await client.post(f"/v1/campaigns/{campaign_id}/launch", headers=actors.creator)
    assert refused.json()["code"] == "transition_not_allowed"
    await approve(client, actors, campaign_id)
    launched = await post_ok(client, f"/v1/campaigns/{campaign_id}/launch", actors.creator)
    assert (launched["previous_status"], launched["status"]) == ("approved", "live")


async def test_public_vetting_record_has_checks_but_no_private_notes(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, _ = await live_campaign(client, actors)
    response = await client.get(f"/v1/campaigns/{campaign['id']}/vetting-record")
    assert response.status_code == 200
    record = response.json()
    assert record["status"] == "live"
    assert record["reviewed_at"] is not None
    assert [(c["item"], c["result"], c["checked_by_role"]) for c in record["checks"]] == [
        (item, "passed", "operator") for item in CHECKLIST
    ]
    assert record["feedback"] is None
    assert "private note" not in response.text
    assert actors.operator_id not in response.text
    assert [h["to_status"] for h in record["history"]] == ["submitted", "in_review", "approved", "live"]


async def test_unlaunched_campaigns_have_no_public_vetting_record(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign_id = await _submitted(client, actors)
    assert (await client.get(f"/v1/campaigns/{campaign_id}/vetting-record")).status_code == 404
    assert (await client.get(f"/v1/campaigns/{campaign_id}/vetting-record", headers=actors.creator)).status_code == 200


async def test_review_queue_lists_submitted_and_in_review_for_operators(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    first = await _submitted(client, actors)
    second = await _submitted(client, actors)
    await post_ok(client, f"/v1/campaigns/{second}/start-review", actors.operator)
    await create_campaign(client, actors)  # a draft: not in the queue
    queue = await client.get("/v1/campaigns/review-queue", headers=actors.operator)
    assert [(c["id"], c["status"]) for c in queue.json()] == [(first, "submitted"), (second, "in_review")]
    assert (await client.get("/v1/campaigns/review-queue", headers=actors.creator)).status_code == 403


async def test_suspend_and_reinstate_are_operator_decisions(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, _ = await live_campaign(client, actors)
    base = f"/v1/campaigns/{campaign['id']}"
    assert (await client.post(f"{base}/suspend", json={"reason": "x"}, headers=actors.creator)).status_code == 403
    suspended = await post_ok(client, f"{base}/suspend", actors.operator, {"reason": "complaints"})
    assert suspended["status"] == "suspended"
    assert (await client.get(base)).json()["accepts_pledges"] is False
    reinstated = await post_ok(client, f"{base}/reinstate", actors.operator, {"reason": "resolved"})
    assert reinstated["status"] == "live"


async def test_canceling_a_launched_campaign_publishes_campaign_closed(
    client: httpx.AsyncClient, actors: Actors, database_url: str
) -> None:
    draft = await create_campaign(client, actors)
    await post_ok(client, f"/v1/campaigns/{draft['id']}/cancel", actors.creator)
    campaign, _ = await live_campaign(client, actors)
    await post_ok(client, f"/v1/campaigns/{campaign['id']}/cancel", actors.creator, {"reason": "supplier gone"})
    events = await outbox_events(database_url, "campaign.closed")
    assert [(e["payload"]["campaign_id"], e["payload"]["outcome"]) for e in events] == [(campaign["id"], "canceled")]


def _complete_campaign() -> dict:
    from services.campaigns.tests.factories import campaign_body

    return campaign_body()


def _tier() -> dict:
    from services.campaigns.tests.factories import tier_body

    return tier_body()
