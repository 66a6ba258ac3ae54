"""`POST /internal/refund-outcomes`: many refund outcomes in one call and one transaction, each applied as the
single route applies it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select

from gateway.routing import resolve
from services.pledges.models import OutboxEvent, Pledge, PledgeRefund
from services.pledges.tests.factories import Backer, idem, live_campaign, pledge_body, service_headers
from services.pledges.tests.internal.test_refund_contract import refund
from shared.testing import auth_headers

URL = "/internal/refund-outcomes"
CHARGED = 7_000  # a flexible pledge of the default tier is charged its total at once


async def _charged_pledges(client: httpx.AsyncClient, campaigns: httpx.AsyncClient, count: int) -> list[str]:
    campaign = await live_campaign(campaigns, funding_model="flexible")
    ids = []
    for _ in range(count):
        response = await client.post("/v1/pledges", json=pledge_body(campaign), headers=Backer().headers | idem())
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    return ids


def record(pledge_id: str, amount: int, status: str, **extra: Any) -> dict[str, Any]:
    return refund(amount, status, **extra) | {"pledge_id": pledge_id}


async def _report(client: httpx.AsyncClient, records: list[dict[str, Any]]) -> httpx.Response:
    return await client.post(URL, json={"records": records}, headers=service_headers())


async def _pledge(client: httpx.AsyncClient, pledge_id: str) -> dict[str, Any]:
    response = await client.get(f"/internal/pledges/{pledge_id}", headers=service_headers())
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def _events(app: FastAPI, pledge_ids: list[str]) -> list[dict[str, Any]]:
    async with app.state.db.read_sessions() as session:
        rows = (
            await session.execute(
                select(OutboxEvent).where(OutboxEvent.type == "pledge.refunded").order_by(OutboxEvent.created_at)
            )
        ).scalars()
        return [row.payload for row in rows if row.payload["pledge_id"] in pledge_ids]


async def _rows(app: FastAPI, pledge_ids: list[str]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every stored column of these pledges and of their refunds, to tell whether anything was written."""
    ids = [uuid.UUID(p) for p in pledge_ids]
    async with app.state.db.read_sessions() as session:
        pledges = (await session.execute(select(Pledge.__table__).where(Pledge.id.in_(ids)))).all()
        refunds = (await session.execute(select(PledgeRefund.__table__).where(PledgeRefund.pledge_id.in_(ids)))).all()
    return sorted(map(tuple, pledges), key=str), sorted(map(tuple, refunds), key=str)


@contextmanager
def statements(app: FastAPI) -> Iterator[list[str]]:
    """The SQL statements the service sends to its database meanwhile (an executemany counts once)."""
    seen: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(" ".join(statement.split()))

    engine = app.state.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def test_many_outcomes_of_many_pledges_are_recorded_in_one_call_with_a_fixed_number_of_loads(
    client: httpx.AsyncClient, app: FastAPI, campaigns: httpx.AsyncClient
) -> None:
    full, partial, pending, twice, over, euro, untouched = await _charged_pledges(client, campaigns, 7)
    unknown = str(uuid.uuid4())
    records = [
        record(full, CHARGED, "succeeded", batch_id=str(uuid.uuid4())),
        record(partial, 2_500, "succeeded"),
        record(pending, 1_000, "pending"),
        record(twice, 3_000, "succeeded"),
        record(unknown, 100, "succeeded"),
        record(twice, 4_000, "succeeded"),
        record(over, CHARGED + 1, "succeeded"),
        record(euro, 100, "succeeded", currency="EUR"),
        record(twice, 1, "pending"),  # the two before took all of it
    ]

    with statements(app) as sql:
        response = await _report(client, records)

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["refund_id"], r["pledge_id"]) for r in results] == [(r["refund_id"], r["pledge_id"]) for r in records]
    assert [(r["result"], r["code"]) for r in results] == [
        ("recorded", None),
        ("recorded", None),
        ("recorded", None),
        ("recorded", None),
        ("refused", "pledge_not_found"),
        ("recorded", None),
        ("refused", "refund_exceeds_charged"),
        ("refused", "currency_mismatch"),
        ("refused", "refund_exceeds_charged"),
    ]
    assert all(r["detail"] for r in results if r["result"] == "refused")

    shown = {p: await _pledge(client, p) for p in (full, partial, pending, twice, over, euro, untouched)}
    assert {p: (v["status"], v["refunded_amount"]) for p, v in shown.items()} == {
        full: ("refunded", CHARGED),
        partial: ("partially_refunded", 2_500),
        pending: ("collected", 0),
        twice: ("refunded", CHARGED),
        over: ("collected", 0),
        euro: ("collected", 0),
        untouched: ("collected", 0),
    }
    history = (await client.get(f"/v1/pledges/{twice}", headers=auth_headers("op", "operator"))).json()["refunds"]
    assert sorted((r["amount"], r["status"]) for r in history) == [(3_000, "succeeded"), (4_000, "succeeded")]

    # One event per pledge whose succeeded refunds changed in the call, with the change; each pledge's first.
    common = {"campaign_id": shown[full]["campaign_id"], "currency": "USD", "charged_amount": CHARGED, "revision": 1}
    events = await _events(app, [full, partial, pending, twice, over, euro])
    assert sorted(events, key=lambda e: (e["refunded_amount"], e["pledge_id"])) == sorted(
        [
            common | {"pledge_id": full, "refunded_amount": CHARGED, "refunded_now_amount": CHARGED},
            common | {"pledge_id": partial, "refunded_amount": 2_500, "refunded_now_amount": 2_500},
            common | {"pledge_id": twice, "refunded_amount": CHARGED, "refunded_now_amount": CHARGED},
        ],
        key=lambda e: (e["refunded_amount"], e["pledge_id"]),
    )

    # Pledges and refunds are each loaded by one query for the whole call, not one per record.
    loads = [s for s in sql if s.startswith("SELECT") and "sum(" not in s.lower()]
    assert sum(" FROM pledges " in f"{s} " for s in loads) == 1, loads
    assert sum(" FROM pledge_refunds " in f"{s} " for s in loads) == 1, loads
    assert sum(s.startswith("INSERT INTO pledge_refunds") for s in sql) == 1, sql


async def test_a_refund_that_fails_after_succeeding_is_announced_lower_under_the_next_revision(
    client: httpx.AsyncClient, app: FastAPI, campaigns: httpx.AsyncClient
) -> None:
    """The money of a failed refund went back: the pledge's total goes down, and pledge.refunded says so (a
    negative change, the next revision), so that the campaign's refunded total comes down with it."""
    [pledge_id] = await _charged_pledges(client, campaigns, 1)
    succeeded = record(pledge_id, 3_000, "succeeded")
    assert (await _report(client, [succeeded])).status_code == 200
    failed = succeeded | {"status": "failed", "failure_reason": "expired_or_canceled_card"}
    assert (await _report(client, [failed])).status_code == 200
    assert (await _pledge(client, pledge_id))["refunded_amount"] == 0
    assert (await _report(client, [failed])).status_code == 200  # a replay: no change, no event
    assert (await _report(client, [record(pledge_id, 2_000, "succeeded")])).status_code == 200  # refunded anew

    events = await _events(app, [pledge_id])
    assert [(e["refunded_amount"], e["refunded_now_amount"], e["revision"]) for e in events] == [
        (3_000, 3_000, 1),
        (0, -3_000, 2),
        (2_000, 2_000, 3),
    ]
    assert ((await _pledge(client, pledge_id))["status"], (await _pledge(client, pledge_id))["refunded_amount"]) == (
        "partially_refunded",
        2_000,
    )


async def test_a_replayed_call_changes_nothing_and_an_older_status_never_wins(
    client: httpx.AsyncClient, app: FastAPI, campaigns: httpx.AsyncClient
) -> None:
    first, second = await _charged_pledges(client, campaigns, 2)
    records = [record(first, 3_000, "succeeded"), record(second, 2_000, "pending")]
    assert (await _report(client, records)).status_code == 200
    settled = [records[1] | {"status": "succeeded"}]
    assert (await _report(client, settled)).status_code == 200
    before = await _rows(app, [first, second])
    events_before = await _events(app, [first, second])

    replay = await _report(client, records + settled)
    late = await _report(client, [records[1]])  # a late retry of the pending report

    assert [r["result"] for r in replay.json()["results"] + late.json()["results"]] == ["recorded"] * 4
    assert await _rows(app, [first, second]) == before
    assert await _events(app, [first, second]) == events_before
    assert (await _pledge(client, second))["refunded_amount"] == 2_000
    # A later status still wins, and the single route follows the same rule.
    failed = await _report(client, [settled[0] | {"status": "failed", "failure_reason": "expired_or_canceled_card"}])
    assert failed.json()["results"][0]["result"] == "recorded"
    single = await client.post(
        f"/internal/pledges/{second}/refunds",
        json={k: v for k, v in records[1].items() if k != "pledge_id"},
        headers=service_headers() | {"Idempotency-Key": records[1]["refund_id"]},
    )
    assert (single.status_code, single.json()["status"], single.json()["refunded_amount"]) == (200, "collected", 0)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda rs: [*rs, rs[0] | {"amount": 0}], id="amount_zero"),
        pytest.param(lambda rs: [*rs, {k: v for k, v in rs[0].items() if k != "pledge_id"}], id="no_pledge_id"),
        pytest.param(lambda rs: [*rs, rs[0] | {"status": "refunded"}], id="unknown_status"),
        pytest.param(lambda rs: [*rs, rs[0] | {"amount": "12.50"}], id="amount_not_minor_units"),
        pytest.param(lambda rs: rs * 501, id="too_many"),
        pytest.param(lambda rs: [], id="empty"),
    ],
)
async def test_a_body_that_does_not_validate_is_a_422_problem_and_records_nothing(
    client: httpx.AsyncClient, app: FastAPI, campaigns: httpx.AsyncClient, mangle: Any
) -> None:
    [pledge] = await _charged_pledges(client, campaigns, 1)
    before = await _rows(app, [pledge])

    response = await _report(client, mangle([record(pledge, 1_000, "succeeded")]))

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 422
    assert await _rows(app, [pledge]) == before
    assert await _events(app, [pledge]) == []


async def test_the_bulk_route_needs_a_service_token_and_is_not_routed_by_the_gateway(
    client: httpx.AsyncClient,
) -> None:
    body = {"records": [record(str(uuid.uuid4()), 100, "succeeded")]}
    assert (await client.post(URL, json=body)).status_code == 401
    for role in ("operator", "backer", "creator"):
        assert (await client.post(URL, json=body, headers=auth_headers("someone", role))).status_code == 403
    assert resolve("POST", URL) is None
    assert resolve("POST", "/v1/pledges/../internal/refund-outcomes") is None


async def test_a_call_of_unknown_pledges_only_refuses_each_record(client: httpx.AsyncClient) -> None:
    records = [record(str(uuid.uuid4()), 100, "succeeded") for _ in range(3)]

    response = await _report(client, records)

    assert response.status_code == 200, response.text
    assert [(r["refund_id"], r["result"], r["code"]) for r in response.json()["results"]] == [
        (r["refund_id"], "refused", "pledge_not_found") for r in records
    ]
