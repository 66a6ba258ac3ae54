"""The internal API the refunds service builds on, exactly as promised to it."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from services.pledges.models import OutboxEvent
from services.pledges.tests.factories import (
    Backer,
    idem,
    live_campaign,
    payment_intents,
    pledge_body,
    reservation,
    service_headers,
)
from shared.testing import auth_headers
from stripe_local.testing import StripeLocalProcess

FIELDS = {
    "pledge_id",
    "campaign_id",
    "backer_id",
    "tier_id",
    "status",
    "funding_model",
    "currency",
    "total_amount",
    "charged_amount",
    "refunded_amount",
    "refundable_amount",
    "stripe_payment_intent_id",
    "disputed",
    "created_at",
}


async def _pledge(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/pledges", json=body, headers=Backer().headers | idem())
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def refund(amount: int, status: str, refund_id: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "refund_id": refund_id or str(uuid.uuid4()),
        "stripe_refund_id": f"re_{uuid.uuid4().hex[:12]}",
        "amount": amount,
        "currency": "USD",
        "status": status,
        "failure_reason": None,
        "batch_id": None,
        **extra,
    }


async def _record(client: httpx.AsyncClient, pledge_id: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(
        f"/internal/pledges/{pledge_id}/refunds",
        json=body,
        headers=service_headers() | {"Idempotency-Key": body["refund_id"]},
    )


async def test_listing_pages_by_created_then_id_with_filters(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible", tiers=[{}, {"title": "Deluxe"}])
    first_tier, second_tier = campaign.tiers
    made = [await _pledge(client, pledge_body(campaign, first_tier)) for _ in range(4)]
    made.append(await _pledge(client, pledge_body(campaign, second_tier)))
    url = f"/internal/campaigns/{campaign.id}/pledges"

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(url, params=params, headers=service_headers())).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert [p["pledge_id"] for p in seen] == [p["id"] for p in made]
    item = seen[0]
    assert set(item) == FIELDS
    [intent] = payment_intents(stripe_server, item["pledge_id"])
    assert item | {"created_at": None} == {
        "pledge_id": made[0]["id"],
        "campaign_id": campaign.id,
        "backer_id": made[0]["backer_id"],
        "tier_id": first_tier["id"],
        "status": "collected",
        "funding_model": "flexible",
        "currency": "USD",
        "total_amount": 7_000,
        "charged_amount": 7_000,
        "refunded_amount": 0,
        "refundable_amount": 7_000,
        "stripe_payment_intent_id": intent["id"],
        "disputed": False,
        "created_at": None,
    }
    by_tier = (await client.get(url, params={"tier_id": second_tier["id"]}, headers=service_headers())).json()
    assert [p["pledge_id"] for p in by_tier["items"]] == [made[4]["id"]]
    by_status = (await client.get(url, params={"status": "active"}, headers=service_headers())).json()
    assert by_status["items"] == []
    window = {"created_from": made[1]["created_at"], "created_to": made[3]["created_at"]}
    in_window = (await client.get(url, params=window, headers=service_headers())).json()
    assert [p["pledge_id"] for p in in_window["items"]] == [made[1]["id"], made[2]["id"]]
    assert (await client.get(url, params={"limit": 501}, headers=service_headers())).status_code == 422


async def test_never_charged_pledges_show_zero_and_no_payment_intent(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient
) -> None:
    campaign = await live_campaign(campaigns)
    pledge = await _pledge(client, pledge_body(campaign))

    got = (await client.get(f"/internal/pledges/{pledge['id']}", headers=service_headers())).json()

    assert (got["status"], got["funding_model"]) == ("active", "all_or_nothing")
    assert (got["charged_amount"], got["refundable_amount"], got["stripe_payment_intent_id"]) == (0, 0, None)
    missing = await client.get(f"/internal/pledges/{uuid.uuid4()}", headers=service_headers())
    assert missing.status_code == 404


async def test_refund_outcomes_move_the_pledge_between_partially_refunded_refunded_and_back(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    pledge = await _pledge(client, pledge_body(campaign))
    backer_headers = auth_headers(pledge["backer_id"], "backer")

    partial = refund(3_000, "pending")
    pending = await _record(client, pledge["id"], partial)
    assert (pending.status_code, pending.json()["status"], pending.json()["refunded_amount"]) == (200, "collected", 0)
    succeeded = await _record(client, pledge["id"], partial | {"status": "succeeded"})
    assert (succeeded.json()["status"], succeeded.json()["refunded_amount"]) == ("partially_refunded", 3_000)
    assert succeeded.json()["refundable_amount"] == 4_000
    again = await _record(client, pledge["id"], partial | {"status": "succeeded"})
    assert again.json()["refunded_amount"] == 3_000  # the same refund recorded twice counts once

    rest = refund(4_000, "succeeded", batch_id=str(uuid.uuid4()))
    full = await _record(client, pledge["id"], rest)
    assert (full.json()["status"], full.json()["refunded_amount"], full.json()["refundable_amount"]) == (
        "refunded",
        7_000,
        0,
    )
    too_much = await _record(client, pledge["id"], refund(1, "pending"))
    assert (too_much.status_code, too_much.json()["code"]) == (409, "refund_exceeds_charged")

    failed_later = await _record(
        client, pledge["id"], rest | {"status": "failed", "failure_reason": "lost_or_stolen_card"}
    )
    assert (failed_later.json()["status"], failed_later.json()["refunded_amount"]) == ("partially_refunded", 3_000)

    shown = (await client.get(f"/v1/pledges/{pledge['id']}", headers=backer_headers)).json()
    assert {(r["refund_id"], r["status"], r["amount"]) for r in shown["refunds"]} == {
        (partial["refund_id"], "succeeded", 3_000),
        (rest["refund_id"], "failed", 4_000),
    }
    assert shown["payment"]["refunded_amount"] == 3_000


async def test_refunds_never_exceed_what_was_charged_and_currency_must_match(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient
) -> None:
    flexible = await live_campaign(campaigns, funding_model="flexible")
    charged = await _pledge(client, pledge_body(flexible))
    saved_only = await _pledge(client, pledge_body(await live_campaign(campaigns)))

    over = await _record(client, charged["id"], refund(7_001, "succeeded"))
    never_charged = await _record(client, saved_only["id"], refund(100, "succeeded"))
    wrong_currency = await _record(client, charged["id"], refund(100, "succeeded", currency="EUR"))
    other_pledge_same_id = refund(100, "pending")
    assert (await _record(client, charged["id"], other_pledge_same_id)).status_code == 200
    reused = await _record(client, saved_only["id"], other_pledge_same_id)

    assert (over.status_code, over.json()["code"]) == (409, "refund_exceeds_charged")
    assert (never_charged.status_code, never_charged.json()["code"]) == (409, "refund_exceeds_charged")
    assert (wrong_currency.status_code, wrong_currency.json()["code"]) == (422, "currency_mismatch")
    assert (reused.status_code, reused.json()["code"]) == (409, "refund_id_reused")


async def test_cancel_releases_and_detaches_a_never_charged_pledge_and_refuses_a_charged_one(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    campaign = await live_campaign(campaigns)
    pledge = await _pledge(client, pledge_body(campaign))
    key = {"Idempotency-Key": str(uuid.uuid4())}
    url = f"/internal/pledges/{pledge['id']}/cancel"

    canceled = await client.post(url, json={"reason": "refund_batch"}, headers=service_headers() | key)
    again = await client.post(url, json={"reason": "refund_batch"}, headers=service_headers() | key)

    assert canceled.status_code == 200, canceled.text
    assert (canceled.json()["status"], again.json()["status"]) == ("canceled", "canceled")
    assert (await reservation(campaigns, campaign.id, pledge["id"]))["status"] == "released"
    [intent] = stripe_server.local("GET", "setup_intents", **{"metadata[pledge_id]": pledge["id"]})["data"]
    pm = stripe_server.local("GET", "events", type="payment_method.detached")["data"]
    assert any(e["data"]["object"]["id"] == intent["payment_method"] for e in pm)

    flexible = await live_campaign(campaigns, funding_model="flexible")
    paid = await _pledge(client, pledge_body(flexible))
    refused = await client.post(
        f"/internal/pledges/{paid['id']}/cancel", json={"reason": "x"}, headers=service_headers() | key
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "already_charged")


async def test_internal_routes_need_a_service_token(client: httpx.AsyncClient) -> None:
    url = f"/internal/pledges/{uuid.uuid4()}"
    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers=auth_headers("op", "operator"))).status_code == 403
    missing_key = await client.post(f"{url}/cancel", json={"reason": "x"}, headers=service_headers())
    assert missing_key.status_code == 422


async def test_each_refund_that_succeeds_publishes_pledge_refunded_with_ids_and_amounts(
    client: httpx.AsyncClient, app: FastAPI, campaigns: httpx.AsyncClient
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    pledge = await _pledge(client, pledge_body(campaign))
    first, second = refund(3_000, "pending"), refund(4_000, "succeeded")

    assert (await _record(client, pledge["id"], first)).status_code == 200  # pending: nothing refunded yet
    assert (await _record(client, pledge["id"], first | {"status": "succeeded"})).status_code == 200
    assert (await _record(client, pledge["id"], first | {"status": "succeeded"})).status_code == 200  # replay
    assert (await _record(client, pledge["id"], second)).status_code == 200

    async with app.state.db.read_sessions() as session:
        rows = (
            await session.execute(
                select(OutboxEvent).where(OutboxEvent.type == "pledge.refunded").order_by(OutboxEvent.created_at)
            )
        ).scalars()
        payloads = [row.payload for row in rows if row.payload["pledge_id"] == pledge["id"]]
    common = {"pledge_id": pledge["id"], "campaign_id": campaign.id, "currency": "USD", "charged_amount": 7_000}
    assert payloads == [
        common | {"refunded_amount": 3_000, "refunded_now_amount": 3_000, "revision": 1},
        common | {"refunded_amount": 7_000, "refunded_now_amount": 4_000, "revision": 2},
    ]
