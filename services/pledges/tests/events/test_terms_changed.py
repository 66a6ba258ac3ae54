"""A material change of a tier's terms: backers of the old version accept the new terms or withdraw."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from services.pledges.tests.factories import (
    Backer,
    LiveCampaign,
    eventually,
    idem,
    live_campaign,
    payment_intents,
    pledge_body,
    refunds,
    reservation,
    service_headers,
)
from services.pledges.tests.processes import RefundsProcess
from stripe_local.testing import StripeLocalProcess


async def change_terms(campaigns: httpx.AsyncClient, campaign: LiveCampaign, **changes: Any) -> dict[str, Any]:
    tier = campaign.tier
    edited = await campaigns.patch(
        f"/v1/campaigns/{campaign.id}/tiers/{tier['id']}",
        json=changes,
        headers=campaign.creator | {"If-Match": f'"{tier["revision"]}"'},
    )
    assert edited.status_code == 200, edited.text
    return edited.json()  # type: ignore[no-any-return]


async def deliver_terms_changed(client: httpx.AsyncClient, campaign: LiveCampaign, edited: dict[str, Any]) -> None:
    """What the campaigns relay POSTs for its `tier.terms_changed` event."""
    terms = edited["terms"]
    envelope = {
        "id": str(uuid.uuid4()),
        "type": "tier.terms_changed",
        "source": "campaigns",
        "occurred_at": datetime.now(UTC).isoformat(),
        "payload": {
            "campaign_id": campaign.id,
            "tier_id": edited["id"],
            "previous_version": terms["version"] - 1,
            "previous_content_hash": campaign.tier["terms"]["content_hash"],
            "new_version": terms["version"],
            "new_content_hash": terms["content_hash"],
            "reasons": terms["change_reasons"],
            "changed_at": terms["created_at"],
        },
    }
    for expected in ("accepted", "duplicate"):
        response = await client.post("/internal/events", json=envelope, headers=service_headers())
        assert (response.status_code, response.json()["status"]) == (202, expected)


async def test_backers_of_the_old_version_are_asked_and_keep_their_terms_until_they_accept(
    client: httpx.AsyncClient, campaigns: httpx.AsyncClient
) -> None:
    campaign = await live_campaign(campaigns)
    backer = Backer()
    pledge = (
        await client.post("/v1/pledges", json=pledge_body(campaign, amount=9_000), headers=backer.headers | idem())
    ).json()
    edited = await change_terms(campaigns, campaign, estimated_delivery="2027-12")
    await deliver_terms_changed(client, campaign, edited)
    url = f"/v1/pledges/{pledge['id']}"

    asked = (await client.get(url, headers=backer.headers)).json()
    assert asked["consent"]["status"] == "requested"
    assert (asked["consent"]["version"], asked["consent"]["reasons"]) == (2, ["delivery_later"])
    assert asked["terms"]["content"]["estimated_delivery"] == "2027-06"  # still what they bought

    wrong = await client.post(f"{url}/accept-terms", json={"version": 3}, headers=backer.headers)
    accepted = await client.post(f"{url}/accept-terms", json={"version": 2}, headers=backer.headers)
    again = await client.post(f"{url}/accept-terms", json={"version": 2}, headers=backer.headers)

    assert (wrong.status_code, wrong.json()["code"]) == (409, "no_consent_requested")
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert (body["terms_version"], body["terms"]["version"], body["consent"]["status"]) == (2, 2, "accepted")
    assert body["terms"]["content"]["estimated_delivery"] == "2027-12"
    assert body["terms"]["content_hash"] == edited["terms"]["content_hash"]
    assert [t["version"] for t in body["terms_history"]] == [1, 2]
    assert body["terms_history"][0]["content"]["estimated_delivery"] == "2027-06"
    assert again.status_code == 200
    other = await client.post(f"{url}/accept-terms", json={"version": 2}, headers=Backer().headers)
    assert other.status_code == 404


async def test_withdrawing_a_charged_pledge_refunds_it_in_full_and_releases_it(
    client: httpx.AsyncClient,
    campaigns: httpx.AsyncClient,
    stripe_server: StripeLocalProcess,
    refunds_service: RefundsProcess,
) -> None:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    backer = Backer()
    pledge = (await client.post("/v1/pledges", json=pledge_body(campaign), headers=backer.headers | idem())).json()
    url = f"/v1/pledges/{pledge['id']}"
    early = await client.post(f"{url}/withdraw", headers=backer.headers)
    assert (early.status_code, early.json()["code"]) == (409, "no_consent_requested")

    edited = await change_terms(campaigns, campaign, price_amount=6_500)
    await deliver_terms_changed(client, campaign, edited)
    withdrawn = await client.post(f"{url}/withdraw", headers=backer.headers)

    assert withdrawn.status_code == 200, withdrawn.text
    body = withdrawn.json()
    assert (body["status"], body["consent"]["status"]) == ("canceled", "withdrawn")
    [asked] = body["refunds"]
    assert asked["amount"] == 7_000

    async def refunded() -> dict[str, Any] | None:
        shown = (await client.get(url, headers=backer.headers)).json()
        return shown if shown["payment"]["refunded_amount"] == 7_000 else None

    shown = await eventually(refunded, what="the withdrawal's refund settled")
    assert [(r["refund_id"], r["status"]) for r in shown["refunds"]] == [(asked["refund_id"], "succeeded")]
    assert shown["status"] == "canceled"
    [intent] = payment_intents(stripe_server, pledge["id"])
    [refund] = refunds(stripe_server, intent["id"])
    assert (refund["amount"], refund["status"]) == (7_000, "succeeded")
    assert (refund["metadata"]["refund_item_id"], refund["metadata"]["refund_kind"]) == (asked["refund_id"], "backer")
    assert (await reservation(campaigns, campaign.id, pledge["id"]))["status"] == "released"
    # Withdrawing again changes nothing and refunds nothing more.
    assert (await client.post(f"{url}/withdraw", headers=backer.headers)).status_code == 200
    assert len(refunds(stripe_server, intent["id"])) == 1
