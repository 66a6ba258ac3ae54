from __future__ import annotations

import uuid
from typing import Any

import httpx

from services.refunds.tests.fakes import FakePledge, FakePledges
from shared.testing import auth_headers

OPERATOR = auth_headers("operator-1", "operator")


async def create(
    client: httpx.AsyncClient, body: dict[str, Any], *, key: str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        "/v1/refund-batches",
        json=body,
        headers={**(headers or OPERATOR), "Idempotency-Key": key or str(uuid.uuid4())},
    )


def seed_mixed_campaign(fake: FakePledges, campaign_id: uuid.UUID) -> dict[str, FakePledge]:
    p = {
        "charged": fake.add(campaign_id=campaign_id, charged_amount=5000, stripe_payment_intent_id="pi_a"),
        "charged_eur": fake.add(
            campaign_id=campaign_id, currency="EUR", charged_amount=3000, stripe_payment_intent_id="pi_b"
        ),
        "partly": fake.add(campaign_id=campaign_id, charged_amount=4000, stripe_payment_intent_id="pi_c"),
        "refunded": fake.add(
            campaign_id=campaign_id, charged_amount=2000, stripe_payment_intent_id="pi_d", status="refunded"
        ),
        "disputed": fake.add(
            campaign_id=campaign_id, charged_amount=2500, stripe_payment_intent_id="pi_e", disputed=True
        ),
        "uncharged": fake.add(campaign_id=campaign_id, charged_amount=0, total_amount=7000),
        "declined": fake.add(campaign_id=campaign_id, charged_amount=0, total_amount=1000, status="payment_failed"),
    }
    p["partly"].refunds["r0"] = {"amount": 1500, "status": "succeeded"}
    p["refunded"].refunds["r1"] = {"amount": 2000, "status": "succeeded"}
    return p


async def test_preview_lists_items_totals_and_every_exclusion_with_its_reason(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    pledges = seed_mixed_campaign(fake_pledges, campaign_id)
    response = await create(client, {"campaign_id": str(campaign_id), "reason": "Project canceled"})
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["status"] == "preview"
    assert batch["item_count"] == 5  # three refunds and two cancellations (a failed charge is never charged)
    assert batch["cancel_count"] == 2
    assert batch["totals"] == [
        {"currency": "EUR", "amount": 3000, "count": 1},
        {"currency": "USD", "amount": 5000 + 2500, "count": 2},
    ]
    assert batch["exclusion_counts"] == {"already_refunded": 1, "disputed": 1}
    assert batch["progress"]["queued_items"] == 5
    assert response.headers["location"] == f"/v1/refund-batches/{batch['id']}"

    exclusions = await client.get(f"/v1/refund-batches/{batch['id']}/exclusions", headers=OPERATOR)
    assert exclusions.status_code == 200
    reasons = {e["pledge_id"]: e["reason"] for e in exclusions.json()["items"]}
    assert reasons == {
        str(pledges["refunded"].pledge_id): "already_refunded",
        str(pledges["disputed"].pledge_id): "disputed",
    }

    report = await client.get(f"/v1/refund-batches/{batch['id']}/report?format=json", headers=OPERATOR)
    lines = {line["pledge_id"]: line for line in report.json()["items"]}
    assert lines[str(pledges["uncharged"].pledge_id)]["action"] == "cancel_pledge"
    assert lines[str(pledges["declined"].pledge_id)]["action"] == "cancel_pledge"
    assert lines[str(pledges["partly"].pledge_id)]["amount"] == 2500
    assert all(line["status"] == "queued" for line in lines.values())


async def test_amount_rules_percent_fixed_and_above(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    small = fake_pledges.add(campaign_id=campaign_id, charged_amount=999, stripe_payment_intent_id="pi_1")
    large = fake_pledges.add(campaign_id=campaign_id, charged_amount=12000, stripe_payment_intent_id="pi_2")
    uncharged = fake_pledges.add(campaign_id=campaign_id, charged_amount=0)

    async def amounts(rule: dict) -> tuple[dict[str, int], dict[str, int]]:
        created = await create(client, {"campaign_id": str(campaign_id), "reason": "rule test", "amount_rule": rule})
        assert created.status_code == 201, created.text
        batch_id = created.json()["id"]
        report = await client.get(
            f"/v1/refund-batches/{batch_id}/report", headers=OPERATOR | {"Accept": "application/json"}
        )
        # Each batch here is canceled so the next one may include the same pledges.
        await client.post(f"/v1/refund-batches/{batch_id}/cancel", headers=OPERATOR)
        return {line["pledge_id"]: line["amount"] for line in report.json()["items"]}, created.json()[
            "exclusion_counts"
        ]

    by_percent, excluded = await amounts({"type": "percent", "percent": 50})
    assert by_percent == {str(small.pledge_id): 499, str(large.pledge_id): 6000}
    assert excluded == {"never_charged": 1}  # a partial refund never cancels a pledge

    by_fixed, _ = await amounts({"type": "fixed", "amount": 1000, "currency": "USD"})
    assert by_fixed == {str(small.pledge_id): 999, str(large.pledge_id): 1000}  # never above what remains

    by_above, excluded = await amounts({"type": "above", "threshold_amount": 10000, "currency": "USD"})
    assert by_above == {str(large.pledge_id): 2000}
    assert excluded == {"nothing_to_refund": 1, "never_charged": 1}

    _, excluded = await amounts({"type": "fixed", "amount": 100, "currency": "EUR"})
    assert excluded == {"currency_mismatch": 2, "never_charged": 1}
    assert uncharged.status == "active"


async def test_selection_by_ids_and_by_filter(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    tier = uuid.uuid4()
    a = fake_pledges.add(campaign_id=campaign_id, charged_amount=100, stripe_payment_intent_id="pi_a", tier_id=tier)
    b = fake_pledges.add(campaign_id=campaign_id, charged_amount=200, stripe_payment_intent_id="pi_b")
    elsewhere = fake_pledges.add(campaign_id=uuid.uuid4(), charged_amount=300, stripe_payment_intent_id="pi_c")
    unknown = uuid.uuid4()

    by_ids = await create(
        client,
        {
            "campaign_id": str(campaign_id),
            "reason": "listed",
            "selection": {"type": "pledges", "pledge_ids": [str(a.pledge_id), str(elsewhere.pledge_id), str(unknown)]},
        },
    )
    assert by_ids.status_code == 201, by_ids.text
    assert by_ids.json()["item_count"] == 1
    assert by_ids.json()["exclusion_counts"] == {"other_campaign": 1, "not_found": 1}
    await client.post(f"/v1/refund-batches/{by_ids.json()['id']}/cancel", headers=OPERATOR)

    by_tier = await create(
        client,
        {"campaign_id": str(campaign_id), "reason": "tier", "selection": {"type": "filter", "tier_id": str(tier)}},
    )
    assert by_tier.json()["item_count"] == 1
    assert by_tier.json()["totals"] == [{"currency": "USD", "amount": 100, "count": 1}]

    # `a` is in the open tier batch now: another batch leaves it out.
    again = await create(client, {"campaign_id": str(campaign_id), "reason": "everything"})
    assert again.json()["item_count"] == 1
    assert again.json()["exclusion_counts"] == {"in_other_batch": 1}
    assert again.json()["totals"] == [{"currency": "USD", "amount": b.charged_amount, "count": 1}]


async def test_same_idempotency_key_replays_the_preview(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    fake_pledges.add(campaign_id=campaign_id, charged_amount=100, stripe_payment_intent_id="pi_a")
    body = {"campaign_id": str(campaign_id), "reason": "replay"}
    first = await create(client, body, key="batch-key-1")
    second = await create(client, body, key="batch-key-1")
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
    listed = await client.get(f"/v1/refund-batches?campaign_id={campaign_id}", headers=OPERATOR)
    assert len(listed.json()["items"]) == 1


async def test_pledges_unavailable_is_a_503_and_creates_nothing(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    fake_pledges.add(campaign_id=campaign_id, charged_amount=100, stripe_payment_intent_id="pi_a")
    fake_pledges.fail_next = 10
    response = await create(client, {"campaign_id": str(campaign_id), "reason": "down"})
    assert response.status_code == 503
    assert response.json()["code"] == "pledges_unavailable"
    fake_pledges.fail_next = 0
    listed = await client.get(f"/v1/refund-batches?campaign_id={campaign_id}", headers=OPERATOR)
    assert listed.json()["items"] == []


async def test_invalid_selection_and_rules_are_422(client: httpx.AsyncClient, campaign_id: uuid.UUID) -> None:
    for body in (
        {"campaign_id": str(campaign_id), "reason": "x"},
        {"campaign_id": str(campaign_id), "reason": "bad", "amount_rule": {"type": "percent", "percent": 0}},
        {
            "campaign_id": str(campaign_id),
            "reason": "bad",
            "amount_rule": {"type": "fixed", "amount": 1.5, "currency": "USD"},
        },
        {"campaign_id": str(campaign_id), "reason": "bad", "selection": {"type": "filter"}},
        {"campaign_id": str(campaign_id), "reason": "bad", "selection": {"type": "pledges", "pledge_ids": []}},
    ):
        response = await create(client, body)
        assert response.status_code == 422, body
        assert response.json()["code"] == "validation_error"
