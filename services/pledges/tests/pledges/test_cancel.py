"""A backer cancels before the deadline."""

from __future__ import annotations

import httpx

from services.pledges.tests.factories import (
    Backer,
    idem,
    live_campaign,
    payment_intents,
    pledge_body,
    refunds,
    reservation,
    setup_intents,
)
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


async def test_canceling_a_flexible_pledge_refunds_the_payment_once(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    backer = Backer()
    pledge = (await client.post("/v1/pledges", json=pledge_body(campaign), headers=backer.headers | idem())).json()

    canceled = await client.post(f"/v1/pledges/{pledge['id']}/cancel", headers=backer.headers)
    again = await client.post(f"/v1/pledges/{pledge['id']}/cancel", headers=backer.headers)

    assert (canceled.status_code, again.status_code) == (200, 200)
    assert canceled.json()["payment"]["refunded_amount"] == 7_000
    [refund_record] = canceled.json()["refunds"]
    assert (refund_record["status"], refund_record["amount"]) == ("succeeded", 7_000)
    [intent] = payment_intents(stripe_server, pledge["id"])
    assert [r["amount"] for r in refunds(stripe_server, intent["id"])] == [7_000]
    assert (await reservation(campaigns, campaign.id, pledge["id"]))["status"] == "released"


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
