"""A backer cancels before the deadline."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from fastapi import FastAPI

from services.pledges.tests.factories import (
    Backer,
    eventually,
    idem,
    live_campaign,
    payment_intents,
    pledge_body,
    refunds,
    reservation,
    setup_intents,
)
from services.pledges.tests.processes import RefundsProcess
from stripe_local.testing import StripeLocalProcess


async def test_canceling_an_all_or_nothing_pledge_releases_it_and_forgets_the_card(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    campaign = await live_campaign(campaigns)
    backer = Backer()
    pledge = (await client.post("/v1/pledges", json=pledge_body(campaign), headers=backer.headers | idem())).json()

    canceled = await client.post(f"/v1/pledges/{pledge['id']}/cancel", headers=backer.headers)

    assert canceled.status_code == 200, canceled.text
    body = canceled.json()
    assert (body["status"], body["payment"]["card_saved"]) == ("canceled", False)
    assert body["canceled_at"] is not None
    assert (await reservation(campaigns, campaign.id, pledge["id"]))["status"] == "released"
    [intent] = setup_intents(stripe_server, pledge["id"])
    detached = stripe_server.local("GET", "events", type="payment_method.detached")["data"]
    assert any(e["data"]["object"]["id"] == intent["payment_method"] for e in detached)
    assert payment_intents(stripe_server, pledge["id"]) == []
    assert (await client.post(f"/v1/pledges/{pledge['id']}/cancel", headers=backer.headers)).status_code == 200


async def settled(client: httpx.AsyncClient, backer: Backer, pledge_id: str) -> dict[str, Any]:
    """The pledge once the refunds service has reported its refund's outcome."""

    async def probe() -> dict[str, Any] | None:
        shown = (await client.get(f"/v1/pledges/{pledge_id}", headers=backer.headers)).json()
        return shown if shown["refunds"] and shown["refunds"][0]["status"] != "pending" else None

    return await eventually(probe, what=f"the refund of pledge {pledge_id} settled")  # type: ignore[no-any-return]


async def test_canceling_a_flexible_pledge_refunds_it_once_through_the_refunds_service(
    client: httpx.AsyncClient,
    campaigns: httpx.AsyncClient,
    stripe_server: StripeLocalProcess,
    refunds_service: RefundsProcess,
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    backer = Backer()
    pledge = (await client.post("/v1/pledges", json=pledge_body(campaign), headers=backer.headers | idem())).json()

    canceled = await client.post(f"/v1/pledges/{pledge['id']}/cancel", headers=backer.headers)

    assert canceled.status_code == 200, canceled.text
    body = canceled.json()
    assert (body["status"], body["canceled_at"] is not None) == ("canceled", True)
    [asked] = body["refunds"]
    # Recorded before the refund settles (it is usually still pending: the refunds workers send it).
    assert (asked["amount"], asked["batch_id"] is not None) == (7_000, True)
    assert asked["status"] in ("pending", "succeeded")
    assert (await reservation(campaigns, campaign.id, pledge["id"]))["status"] == "released"

    shown = await settled(client, backer, pledge["id"])
    [refund_record] = shown["refunds"]
    assert (shown["status"], shown["payment"]["refunded_amount"]) == ("canceled", 7_000)
    assert (refund_record["refund_id"], refund_record["status"]) == (asked["refund_id"], "succeeded")
    [intent] = payment_intents(stripe_server, pledge["id"])
    [made] = refunds(stripe_server, intent["id"])
    assert (made["id"], made["amount"]) == (refund_record["stripe_refund_id"], 7_000)
    # Made by the refunds service's workers (its item and batch), not by this service directly.
    assert made["metadata"]["refund_item_id"] == refund_record["refund_id"]
    assert (made["metadata"]["refund_batch_id"], made["metadata"]["refund_kind"]) == (asked["batch_id"], "backer")

    again = await client.post(f"/v1/pledges/{pledge['id']}/cancel", headers=backer.headers)
    assert (again.status_code, again.json()["status"]) == (200, "canceled")
    await asyncio.sleep(0.5)
    assert len(refunds(stripe_server, intent["id"])) == 1


async def test_a_cancel_while_the_refunds_service_is_down_is_taken_and_finished_by_the_sweeper(
    client: httpx.AsyncClient,
    app: FastAPI,
    campaigns: httpx.AsyncClient,
    stripe_server: StripeLocalProcess,
    refunds_process: RefundsProcess,
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    backer = Backer()
    pledge = (await client.post("/v1/pledges", json=pledge_body(campaign), headers=backer.headers | idem())).json()
    url = f"/v1/pledges/{pledge['id']}/cancel"

    taken = await client.post(url, headers=backer.headers)

    # Accepted, not finished: the capacity is released now; the refund waits for the refunds service.
    assert taken.status_code == 202, taken.text
    assert (taken.json()["status"], taken.json()["refunds"]) == ("compensating", [])
    assert (await reservation(campaigns, campaign.id, pledge["id"]))["status"] == "released"
    [intent] = payment_intents(stripe_server, pledge["id"])
    assert refunds(stripe_server, intent["id"]) == []
    assert (await client.post(url, headers=backer.headers)).status_code == 202  # asked again: still underway
    await app.state.pledge_worker.run_once()  # the sweeper tries too, and leaves it for later
    assert (await client.get(f"/v1/pledges/{pledge['id']}", headers=backer.headers)).json()["status"] == (
        "compensating"
    )

    refunds_process.start()
    await eventually(lambda: _swept(app), what="the sweeper resumed the cancel")

    shown = await settled(client, backer, pledge["id"])
    assert (shown["status"], shown["payment"]["refunded_amount"]) == ("canceled", 7_000)
    assert [r["amount"] for r in refunds(stripe_server, intent["id"])] == [7_000]


async def _swept(app: FastAPI) -> bool:
    # The lease was handed back when the refunds call failed: the next poll takes the pledge again.
    return (await app.state.pledge_worker.run_once()).swept > 0


async def test_only_the_backer_cancels_and_not_a_refused_pledge(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient
) -> None:
    campaign = await live_campaign(campaigns)
    backer = Backer()
    pledge = (await client.post("/v1/pledges", json=pledge_body(campaign), headers=backer.headers | idem())).json()
    declined = await client.post(
        "/v1/pledges",
        json=pledge_body(campaign, payment_method="pm_card_chargeDeclined"),
        headers=backer.headers | idem(),
    )

    stranger = await client.post(f"/v1/pledges/{pledge['id']}/cancel", headers=Backer().headers)
    refused = await client.post(f"/v1/pledges/{declined.json()['pledge_id']}/cancel", headers=backer.headers)

    assert stranger.status_code == 404
    assert (refused.status_code, refused.json()["code"]) == (409, "pledge_not_cancelable")
