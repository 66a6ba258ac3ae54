"""``pledge.refunded`` from the pledges service, received on ``POST /internal/events``: each pledge's refunded
total counts once however often and in whatever order its events arrive, and the campaign's refunded total is
shown only to those who see exact figures."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from services.campaigns.tests.disclosure.figures import numbers_in
from services.campaigns.tests.factories import Actors, live_campaign, pledge, post_ok

# Refunded figures end in odd cents: they never coincide with a price, a goal, a band edge or a rounded value.
FIRST_REFUND = 3_217
FULL_REFUND = 6_043


def refunded_event(
    campaign: dict[str, Any], pledge_id: str, refunded: int, *, event_id: str | None = None, **changes: Any
) -> dict[str, Any]:
    """The envelope the pledges service's relay sends (``shared.outbox``), payload as pledges publishes it."""
    payload = {
        "pledge_id": pledge_id,
        "campaign_id": campaign["id"],
        "currency": campaign["currency"],
        "charged_amount": FULL_REFUND,
        "refunded_amount": refunded,
        "refunded_now_amount": refunded,  # pledges' step; the consumer relies on the cumulative total only
    } | changes
    return {
        "id": event_id or str(uuid.uuid4()),
        "type": "pledge.refunded",
        "source": "pledges",
        "occurred_at": datetime.now(UTC).isoformat(),
        "payload": payload,
    }


async def deliver(client: httpx.AsyncClient, actors: Actors, envelope: dict[str, Any]) -> httpx.Response:
    return await client.post("/internal/events", json=envelope, headers=actors.service)


async def refunded_total(client: httpx.AsyncClient, campaign_id: str, headers: dict[str, str]) -> int | None:
    response = await client.get(f"/v1/campaigns/{campaign_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["funding"]["refunded_amount"]  # type: ignore[no-any-return]


async def charged_campaign(
    client: httpx.AsyncClient, actors: Actors, **overrides: Any
) -> tuple[dict[str, Any], list[str]]:
    """A live flexible campaign with two confirmed pledges (their ids are what pledges would announce)."""
    campaign, [tier] = await live_campaign(client, actors, funding_model="flexible", **overrides)
    pledges = [(await pledge(client, actors, campaign["id"], tier))["pledge_id"] for _ in range(2)]
    return campaign, pledges


async def test_a_campaign_without_refunds_shows_zero_to_its_creator(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, _ = await charged_campaign(client, actors)
    assert await refunded_total(client, campaign["id"], actors.creator) == 0
    assert await refunded_total(client, campaign["id"], actors.operator) == 0
    assert await refunded_total(client, campaign["id"], {}) is None


async def test_the_same_event_delivered_twice_counts_once(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [pledge_id, _] = await charged_campaign(client, actors)
    envelope = refunded_event(campaign, pledge_id, FIRST_REFUND)

    first = await deliver(client, actors, envelope)
    again = await deliver(client, actors, envelope)

    assert (first.status_code, first.json()) == (202, {"status": "accepted"})
    assert (again.status_code, again.json()) == (202, {"status": "duplicate"})
    assert await refunded_total(client, campaign["id"], actors.creator) == FIRST_REFUND


async def test_a_republished_total_under_a_new_event_id_counts_once(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [pledge_id, _] = await charged_campaign(client, actors)
    for _ in range(3):
        response = await deliver(client, actors, refunded_event(campaign, pledge_id, FIRST_REFUND))
        assert response.json() == {"status": "accepted"}
    assert await refunded_total(client, campaign["id"], actors.creator) == FIRST_REFUND


async def test_a_late_older_total_does_not_overwrite_a_newer_one(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [pledge_id, _] = await charged_campaign(client, actors)
    older = refunded_event(campaign, pledge_id, FIRST_REFUND)
    newer = refunded_event(campaign, pledge_id, FULL_REFUND, refunded_now_amount=FULL_REFUND - FIRST_REFUND)

    assert (await deliver(client, actors, newer)).status_code == 202
    assert (await deliver(client, actors, older)).status_code == 202  # arrives after the newer one

    assert await refunded_total(client, campaign["id"], actors.creator) == FULL_REFUND


async def test_in_order_totals_raise_the_campaign_total_by_the_difference(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [first_pledge, second_pledge] = await charged_campaign(client, actors)
    await deliver(client, actors, refunded_event(campaign, first_pledge, FIRST_REFUND))
    await deliver(client, actors, refunded_event(campaign, first_pledge, FULL_REFUND))
    await deliver(client, actors, refunded_event(campaign, second_pledge, FIRST_REFUND))
    assert await refunded_total(client, campaign["id"], actors.creator) == FULL_REFUND + FIRST_REFUND


async def test_concurrent_events_of_one_campaign_add_up_exactly(client: httpx.AsyncClient, actors: Actors) -> None:
    """Different pledges add up, and one pledge's duplicates and stale totals (each under its own event id) count
    once, however the deliveries interleave."""
    campaign, [first_pledge, second_pledge] = await charged_campaign(client, actors)
    envelopes = [
        *(refunded_event(campaign, first_pledge, amount) for amount in (FIRST_REFUND, FULL_REFUND) * 8),
        *(refunded_event(campaign, second_pledge, FIRST_REFUND) for _ in range(8)),
    ]
    responses = await asyncio.gather(*(deliver(client, actors, envelope) for envelope in envelopes))
    assert [r.status_code for r in responses] == [202] * len(envelopes)
    assert await refunded_total(client, campaign["id"], actors.creator) == FULL_REFUND + FIRST_REFUND


async def test_a_refund_that_fails_after_succeeding_lowers_the_totals_by_revision(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    """Revision 1 raised the pledge's total, revision 2 (the refund failed later: the money went back) lowers it;
    a late delivery of revision 1 under a new event id does not raise it again, and revision 3 (refunded anew)
    raises it, whatever the amounts."""
    campaign, [pledge_id, other] = await charged_campaign(client, actors)
    await deliver(client, actors, refunded_event(campaign, other, FIRST_REFUND, revision=1))
    raised = refunded_event(campaign, pledge_id, FULL_REFUND, revision=1)
    assert (await deliver(client, actors, raised)).json() == {"status": "accepted"}
    assert await refunded_total(client, campaign["id"], actors.creator) == FULL_REFUND + FIRST_REFUND

    failed = refunded_event(campaign, pledge_id, 0, refunded_now_amount=-FULL_REFUND, revision=2)
    assert (await deliver(client, actors, failed)).json() == {"status": "accepted"}
    assert await refunded_total(client, campaign["id"], actors.creator) == FIRST_REFUND

    late = refunded_event(campaign, pledge_id, FULL_REFUND, revision=1)  # revision 1 again, a new event id
    legacy = refunded_event(campaign, pledge_id, FULL_REFUND)  # no revision: the old contract
    for envelope in (late, legacy):
        assert (await deliver(client, actors, envelope)).json() == {"status": "accepted"}
    assert await refunded_total(client, campaign["id"], actors.creator) == FIRST_REFUND

    await deliver(client, actors, refunded_event(campaign, pledge_id, FIRST_REFUND, revision=3))
    assert await refunded_total(client, campaign["id"], actors.creator) == 2 * FIRST_REFUND


async def test_revisions_delivered_concurrently_and_out_of_order_end_at_the_latest_total(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [pledge_id, _] = await charged_campaign(client, actors)
    totals = {1: FIRST_REFUND, 2: FULL_REFUND, 3: 0, 4: FIRST_REFUND}  # refund, refund, both failed, refund
    envelopes = [refunded_event(campaign, pledge_id, totals[r], revision=r) for r in (3, 1, 4, 2) * 4]
    responses = await asyncio.gather(*(deliver(client, actors, envelope) for envelope in envelopes))
    assert [r.status_code for r in responses] == [202] * len(envelopes)
    assert await refunded_total(client, campaign["id"], actors.creator) == FIRST_REFUND


async def test_the_refunded_total_is_shown_only_to_the_creator_and_operators(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    # Every public figure exact and revealed after close: the refunded total is still never public.
    policy = {"amount_raised": "exact", "backer_count": "exact", "reveal_exact_after_close": True}
    campaign, [pledge_id, _] = await charged_campaign(client, actors, disclosure_policy=policy)
    url = f"/v1/campaigns/{campaign['id']}"
    listing = {"creator_id": actors.creator_id}
    public_before = {
        name: await client.get(url, headers=headers) for name, headers in (("anonymous", {}), ("backer", actors.backer))
    }

    await deliver(client, actors, refunded_event(campaign, pledge_id, FIRST_REFUND))

    for privileged in (actors.creator, actors.operator):
        assert await refunded_total(client, campaign["id"], privileged) == FIRST_REFUND
        [listed] = (await client.get("/v1/campaigns", params=listing, headers=privileged)).json()["items"]
        assert listed["funding"]["refunded_amount"] == FIRST_REFUND
    for name, headers in (("anonymous", {}), ("backer", actors.backer), ("other_creator", actors.other_creator)):
        read = await client.get(url, headers=headers)
        listed = await client.get("/v1/campaigns", params=listing, headers=headers)
        for response in (read, listed):
            assert FIRST_REFUND not in numbers_in(response.text), name
        assert read.json()["funding"]["refunded_amount"] is None
        assert listed.json()["items"][0]["funding"]["refunded_amount"] is None
        if name in public_before:  # no side channel either: the same body and ETag as before the refund
            assert read.headers["etag"] == public_before[name].headers["etag"]
            assert read.json() == public_before[name].json()

    await post_ok(client, f"{url}/cancel", actors.creator, {"reason": "refunding everyone"})
    closed = await client.get(url)
    assert (closed.json()["status"], closed.json()["funding"]["exact"]) == ("canceled", True)  # revealed...
    assert closed.json()["funding"]["refunded_amount"] is None  # ...except the refunds
    assert FIRST_REFUND not in numbers_in(closed.text)


async def test_events_that_break_the_contract_are_refused_and_not_recorded(
    client: httpx.AsyncClient, actors: Actors
) -> None:
    campaign, [pledge_id, _] = await charged_campaign(client, actors)
    wrong_currency = refunded_event(campaign, pledge_id, FIRST_REFUND, currency="EUR")
    unknown_campaign = refunded_event(campaign, pledge_id, FIRST_REFUND, campaign_id=str(uuid.uuid4()))
    malformed = refunded_event(campaign, pledge_id, FIRST_REFUND)
    del malformed["payload"]["refunded_amount"]
    negative = refunded_event(campaign, pledge_id, -FIRST_REFUND)
    revision_zero = refunded_event(campaign, pledge_id, FIRST_REFUND, revision=0)
    revision_text = refunded_event(campaign, pledge_id, FIRST_REFUND, revision="second")

    answers = [
        (await deliver(client, actors, e)).json()
        for e in (wrong_currency, unknown_campaign, malformed, negative, revision_zero, revision_text)
    ]

    assert [(a["status"], a["code"]) for a in answers] == [
        (422, "currency_mismatch"),
        (404, "campaign_not_found"),
        (422, "invalid_event_payload"),
        (422, "invalid_event_payload"),
        (422, "invalid_event_payload"),
        (422, "invalid_event_payload"),
    ]
    assert await refunded_total(client, campaign["id"], actors.creator) == 0
    # Not acknowledged, so not in the inbox: the producer's retry of a corrected event is applied.
    wrong_currency["payload"]["currency"] = campaign["currency"]
    assert (await deliver(client, actors, wrong_currency)).json() == {"status": "accepted"}
    assert await refunded_total(client, campaign["id"], actors.creator) == FIRST_REFUND


async def test_only_services_may_deliver_events(client: httpx.AsyncClient, actors: Actors) -> None:
    campaign, [pledge_id, _] = await charged_campaign(client, actors)
    envelope = refunded_event(campaign, pledge_id, FIRST_REFUND)
    assert (await client.post("/internal/events", json=envelope)).status_code == 401
    for user in (actors.creator, actors.operator):
        assert (await client.post("/internal/events", json=envelope, headers=user)).status_code == 403
    assert await refunded_total(client, campaign["id"], actors.creator) == 0
