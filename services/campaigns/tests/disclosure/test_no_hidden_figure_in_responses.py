"""Through the HTTP API, for each amount policy and random figures: no body a non-privileged viewer can get
(campaign read, list, tiers, vetting record, the 409 of a refused pledge) contains a figure the policy hides."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from services.campaigns.tests.disclosure.figures import numbers_in
from services.campaigns.tests.factories import Actors, live_campaign, pledge, reservation_body, reserve

CAP = 5_000_000
odd_amount = st.integers(10_001, 999_999).filter(lambda n: n % 100 != 0)


async def _bodies(client: httpx.AsyncClient, campaign_id: str, tier_id: str, creator_id: str, headers: dict) -> dict:
    responses = {
        "campaign": await client.get(f"/v1/campaigns/{campaign_id}", headers=headers),
        "list": await client.get("/v1/campaigns", params={"creator_id": creator_id}, headers=headers),
        "list_by_deadline": await client.get(
            "/v1/campaigns", params={"creator_id": creator_id, "sort": "deadline"}, headers=headers
        ),
        "tiers": await client.get(f"/v1/campaigns/{campaign_id}/tiers", headers=headers),
        "tier": await client.get(f"/v1/campaigns/{campaign_id}/tiers/{tier_id}", headers=headers),
        "vetting_record": await client.get(f"/v1/campaigns/{campaign_id}/vetting-record", headers=headers),
    }
    for name, response in responses.items():
        assert response.status_code == 200, (name, response.text)
    return {name: response for name, response in responses.items()}


@pytest.mark.parametrize("amount_policy", ["exact", "rounded", "bands", "percent_of_goal", "hidden"])
# Each example launches a campaign through the API: few examples, and no shrinking (a failure is reported as
# drawn). The redaction rules themselves get thousands of examples in test_redaction_rules.py.
@settings(
    max_examples=2,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    backer_policy=st.sampled_from(["exact", "bands", "hidden"]),
    availability_policy=st.sampled_from(["exact", "coarse"]),
    pledges=st.lists(odd_amount, min_size=1, max_size=3),
    pending=odd_amount,
    quantity_limit=st.integers(10_001, 99_999),
)
async def test_no_hidden_figure_reaches_a_public_viewer(
    client: httpx.AsyncClient,
    amount_policy: str,
    backer_policy: str,
    availability_policy: str,
    pledges: list[int],
    pending: int,
    quantity_limit: int,
) -> None:
    committed = sum(pledges)
    remaining_capacity = CAP - committed - pending
    remaining_quantity = quantity_limit - len(pledges) - 1
    assume(committed % 100 != 0 and remaining_capacity % 100 != 0 and remaining_quantity % 100 != 0)
    assume(len({committed, pending, remaining_capacity, remaining_quantity, quantity_limit}) == 5)

    actors = Actors()
    policy = {
        "amount_raised": amount_policy,
        "backer_count": backer_policy,
        "tier_availability": availability_policy,
        "reveal_exact_after_close": True,
    }
    campaign, [tier] = await live_campaign(
        client,
        actors,
        goal_amount=1_000_000,
        cap_amount=CAP,
        disclosure_policy=policy,
        tiers=[{"price_amount": 5_000, "shipping": [], "quantity_limit": quantity_limit}],
    )
    for amount in pledges:
        await pledge(client, actors, campaign["id"], tier, amount=amount)
    assert (await reserve(client, actors, campaign["id"], reservation_body(tier, amount=pending))).status_code == 201
    refused = await reserve(client, actors, campaign["id"], reservation_body(tier, amount=remaining_capacity + 1))
    assert refused.json()["code"] == "cap_reached"

    always_hidden = {pending, remaining_capacity}
    hidden = set(always_hidden)
    if amount_policy != "exact":
        hidden.add(committed)
    if availability_policy == "coarse":
        hidden.add(remaining_quantity)
    assert not numbers_in(refused.text) & (always_hidden | {committed, remaining_quantity})

    for viewer in (None, actors.backer, actors.other_creator):
        bodies = await _bodies(client, campaign["id"], tier["id"], actors.creator_id, viewer or {})
        for name, response in bodies.items():
            leaked = numbers_in(response.text) & hidden
            assert not leaked, (amount_policy, backer_policy, availability_policy, name, leaked)
        funding = bodies["campaign"].json()["funding"]
        assert funding["exact"] is False
        assert funding["pending_amount"] is None
        assert (funding["backer_count"] is not None) == (backer_policy == "exact")
        availability = bodies["tier"].json()["availability"]
        assert (availability["reserved_quantity"], availability["committed_quantity"]) == (None, None)

    for privileged in (actors.creator, actors.operator):
        funding = (await client.get(f"/v1/campaigns/{campaign['id']}", headers=privileged)).json()["funding"]
        assert (funding["exact"], funding["amount_raised_amount"], funding["pending_amount"]) == (
            True,
            committed,
            pending,
        )
        assert funding["backer_count"] == len(pledges)


async def test_there_is_no_sort_by_amount_raised(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/campaigns", params={"sort": "amount_raised"})
    assert response.status_code == 422


async def test_operator_reads_of_exact_figures_are_audited(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [tier] = await live_campaign(client, actors)
    url = f"/v1/campaigns/{campaign['id']}"

    async def figure_reads() -> list[dict]:
        log = (await client.get(f"{url}/audit-log", headers=actors.operator)).json()
        return [e for e in log if e["action"] == "exact_figures_read"]

    before = await figure_reads()
    await client.get(url)
    await client.get(url, headers=actors.creator)
    await client.get(url, headers=actors.backer)
    assert await figure_reads() == before
    await client.get(url, headers=actors.operator)
    await client.get("/v1/campaigns", params={"creator_id": actors.creator_id}, headers=actors.operator)
    await client.get(f"{url}/tiers/{tier['id']}", headers=actors.operator)
    reads = await figure_reads()
    assert [(e["actor_id"], e["details"]["route"]) for e in reads[len(before) :]] == [
        (actors.operator_id, "get_campaign"),
        (actors.operator_id, "list_campaigns"),
        (actors.operator_id, "get_tier"),
    ]
