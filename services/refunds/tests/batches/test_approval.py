from __future__ import annotations

import uuid

import httpx
import pytest

from services.refunds.tests.fakes import FakePledges
from shared.testing import auth_headers

ALICE = auth_headers("operator-alice", "operator")
BOB = auth_headers("operator-bob", "operator")
CREATOR = auth_headers("creator-carol", "creator")
BACKER = auth_headers("backer-dan", "backer")


async def create_batch(
    client: httpx.AsyncClient, fake: FakePledges, campaign_id: uuid.UUID, *, amount: int, headers: dict = ALICE
) -> httpx.Response:
    fake.add(campaign_id=campaign_id, charged_amount=amount, stripe_payment_intent_id=f"pi_{uuid.uuid4().hex}")
    return await client.post(
        "/v1/refund-batches",
        json={"campaign_id": str(campaign_id), "reason": "Creator vanished"},
        headers=headers | {"Idempotency-Key": str(uuid.uuid4())},
    )


async def test_a_creator_or_backer_cannot_create_a_batch(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    for headers, status in ((CREATOR, 403), (BACKER, 403), ({}, 401)):
        response = await create_batch(client, fake_pledges, campaign_id, amount=100, headers=headers)
        assert response.status_code == status
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_creator_cannot_approve_start_or_read_a_batch(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    batch_id = (await create_batch(client, fake_pledges, campaign_id, amount=100)).json()["id"]
    for action in ("approve", "start", "pause", "resume", "cancel"):
        response = await client.post(f"/v1/refund-batches/{batch_id}/{action}", headers=CREATOR)
        assert response.status_code == 403, action
    # A creator may read only what they created (single refunds): another's batch does not exist for them.
    assert (await client.get(f"/v1/refund-batches/{batch_id}", headers=CREATOR)).status_code == 404
    assert (await client.get(f"/v1/refund-batches/{batch_id}/audit-log", headers=CREATOR)).status_code == 403


@pytest.mark.parametrize("fmt", ["csv", "json"])
async def test_a_report_is_never_public(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID, fmt: str
) -> None:
    batch_id = (await create_batch(client, fake_pledges, campaign_id, amount=100)).json()["id"]
    url = f"/v1/refund-batches/{batch_id}/report?format={fmt}"
    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, headers=BACKER)).status_code == 403
    assert (await client.get(url, headers=CREATOR)).status_code == 404
    assert (await client.get(f"/v1/refund-batches/{batch_id}/events")).status_code == 401
    allowed = await client.get(url, headers=ALICE)
    assert allowed.status_code == 200
    assert allowed.headers["content-type"].startswith("text/csv" if fmt == "csv" else "application/json")


async def test_one_operator_cannot_approve_their_own_large_batch(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    created = await create_batch(client, fake_pledges, campaign_id, amount=1_000_001)  # threshold is 1,000,000
    assert created.json()["requires_second_approval"] is True
    batch_id = created.json()["id"]

    own = await client.post(f"/v1/refund-batches/{batch_id}/approve", headers=ALICE)
    assert own.status_code == 403
    assert own.json()["code"] == "second_approver_required"

    approved = await client.post(f"/v1/refund-batches/{batch_id}/approve", headers=BOB, json={"note": "checked"})
    assert approved.status_code == 200
    assert approved.json()["status"] == "approved"
    assert approved.json()["approved_by"] == "operator-bob"

    log = (await client.get(f"/v1/refund-batches/{batch_id}/audit-log", headers=ALICE)).json()
    assert [(e["action"], e["actor_id"]) for e in log] == [("created", "operator-alice"), ("approved", "operator-bob")]
    assert log[1]["details"] == {"note": "checked"}


async def test_a_small_batch_may_be_approved_by_its_creator(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    created = await create_batch(client, fake_pledges, campaign_id, amount=1_000_000)
    assert created.json()["requires_second_approval"] is False
    approved = await client.post(f"/v1/refund-batches/{created.json()['id']}/approve", headers=ALICE)
    assert approved.status_code == 200


async def test_lifecycle_transitions_are_checked_and_audited(
    client: httpx.AsyncClient, fake_pledges: FakePledges, campaign_id: uuid.UUID
) -> None:
    batch_id = (await create_batch(client, fake_pledges, campaign_id, amount=100)).json()["id"]
    base = f"/v1/refund-batches/{batch_id}"

    early = await client.post(f"{base}/start", headers=ALICE)
    assert early.status_code == 409
    assert early.json()["code"] == "batch_not_approved"
    assert (await client.post(f"{base}/pause", headers=ALICE)).json()["code"] == "invalid_batch_state"

    assert (await client.post(f"{base}/approve", headers=ALICE)).json()["status"] == "approved"
    assert (await client.post(f"{base}/approve", headers=BOB)).status_code == 409
    assert (await client.post(f"{base}/start", headers=BOB)).json()["status"] == "running"
    assert (await client.post(f"{base}/pause", headers=ALICE)).json()["status"] == "paused"
    assert (await client.post(f"{base}/resume", headers=ALICE)).json()["status"] == "running"
    canceled = await client.post(f"{base}/cancel", headers=BOB, json={"note": "wrong campaign"})
    assert canceled.json()["status"] == "canceled"
    assert canceled.json()["canceled_by"] == "operator-bob"
    assert canceled.json()["progress"]["by_status"] == [
        {"status": "canceled", "count": 1, "amounts": [{"currency": "USD", "amount": 100, "count": 1}]}
    ]
    assert (await client.post(f"{base}/resume", headers=ALICE)).status_code == 409

    log = (await client.get(f"{base}/audit-log", headers=ALICE)).json()
    assert [(e["action"], e["actor_id"]) for e in log] == [
        ("created", "operator-alice"),
        ("approved", "operator-alice"),
        ("started", "operator-bob"),
        ("paused", "operator-alice"),
        ("resumed", "operator-alice"),
        ("canceled", "operator-bob"),
    ]
    assert log[-1]["details"] == {"note": "wrong campaign", "items_canceled": 1}


async def test_unknown_batch_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/refund-batches/{uuid.uuid4()}", headers=ALICE)
    assert response.status_code == 404
    assert response.json()["code"] == "refund_batch_not_found"
