from __future__ import annotations

import uuid

import httpx

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.tests.fakes import FakeCampaigns, FakePledges
from services.refunds.tests.support import eventually, seed_charged_pledges, stripe_refunds_by_intent
from shared.testing import app_client, auth_headers
from stripe_local.testing import StripeLocalProcess

OPERATOR = auth_headers("operator-1", "operator")
OTHER_OPERATOR = auth_headers("operator-2", "operator")
CREATOR = auth_headers("creator-carol", "creator")
OTHER_CREATOR = auth_headers("creator-eve", "creator")
BACKER = auth_headers("backer-dan", "backer")


async def refund(client: httpx.AsyncClient, headers: dict[str, str], **body: object) -> httpx.Response:
    return await client.post(
        "/v1/refunds",
        json={"reason": "Backer asked", **{k: str(v) if isinstance(v, uuid.UUID) else v for k, v in body.items()}},
        headers=headers | {"Idempotency-Key": str(uuid.uuid4())},
    )


async def test_the_campaign_creator_refunds_one_backer_through_the_batch_machinery(
    settings: Settings,
    fake_pledges: FakePledges,
    fake_campaigns: FakeCampaigns,
    stripe_server: StripeLocalProcess,
    campaign_id: uuid.UUID,
) -> None:
    fake_campaigns.creators[campaign_id] = "creator-carol"
    (pledge,) = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [4200])
    uncharged = fake_pledges.add(campaign_id=campaign_id, charged_amount=0, total_amount=3000)
    async with app_client(create_app(settings.model_copy(update={"worker_enabled": True}))) as client:
        for headers, status in ((OTHER_CREATOR, 403), (BACKER, 403), ({}, 401)):
            assert (await refund(client, headers, pledge_id=pledge.pledge_id)).status_code == status

        created = await refund(client, CREATOR, pledge_id=pledge.pledge_id, amount=1200)
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["action"], body["amount"], body["requires_approval"]) == ("refund", 1200, False)
        assert created.headers["location"] == f"/v1/refunds/{body['id']}"

        async def done() -> dict | None:
            current = (await client.get(f"/v1/refunds/{body['id']}", headers=CREATOR)).json()
            return current if current["status"] == "succeeded" else None

        final = await eventually(done, timeout=20, what="single refund succeeded")
        assert final["stripe_refund_id"]
        # Someone else's single refund is not visible to another creator.
        assert (await client.get(f"/v1/refunds/{body['id']}", headers=OTHER_CREATOR)).status_code == 404

        # A second one for the rest; then nothing is left.
        rest = await refund(client, OPERATOR, pledge_id=pledge.pledge_id, amount=3001)
        assert rest.status_code == 422
        assert rest.json()["code"] == "amount_exceeds_refundable"

        canceled = await refund(client, CREATOR, pledge_id=uncharged.pledge_id)
        assert canceled.json()["action"] == "cancel_pledge"
        await eventually(lambda: _status(uncharged), timeout=20, what="pledge canceled")

    refunds = await stripe_refunds_by_intent(stripe_server)
    assert [r["amount"] for r in refunds[pledge.charged_intent]] == [1200]
    assert next(iter(pledge.refunds.values()))["status"] == "succeeded"


async def _status(pledge: object) -> bool:
    return getattr(pledge, "status", None) == "canceled"


async def test_nothing_to_refund_is_a_409_with_the_reason(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    done = fake_pledges.add(campaign_id=campaign_id, charged_amount=500, stripe_payment_intent_id="pi_x")
    done.refunds["r"] = {"amount": 500, "status": "succeeded"}
    disputed = fake_pledges.add(
        campaign_id=campaign_id, charged_amount=500, stripe_payment_intent_id="pi_y", disputed=True
    )
    open_one = fake_pledges.add(campaign_id=campaign_id, charged_amount=500, stripe_payment_intent_id="pi_z")

    for pledge, code in ((done, "already_refunded"), (disputed, "disputed")):
        response = await refund(client, OPERATOR, pledge_id=pledge.pledge_id)
        assert (response.status_code, response.json()["code"]) == (409, code)
    assert (await refund(client, OPERATOR, pledge_id=open_one.pledge_id)).status_code == 201
    again = await refund(client, OPERATOR, pledge_id=open_one.pledge_id)  # the first has not run (workers off)
    assert (again.status_code, again.json()["code"]) == (409, "refund_in_progress")
    assert (await refund(client, OPERATOR, pledge_id=uuid.uuid4())).status_code == 404


async def test_a_large_single_refund_waits_for_another_operators_approval(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    big = fake_pledges.add(campaign_id=campaign_id, charged_amount=2_000_000, stripe_payment_intent_id="pi_big")
    created = (await refund(client, OPERATOR, pledge_id=big.pledge_id)).json()
    assert (created["requires_approval"], created["batch_status"]) == (True, "preview")
    batch = f"/v1/refund-batches/{created['batch_id']}"
    assert (await client.post(f"{batch}/approve", headers=OPERATOR)).status_code == 403
    assert (await client.post(f"{batch}/approve", headers=OTHER_OPERATOR)).json()["status"] == "approved"
