from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from shared.testing import auth_headers

ALICE = auth_headers("alice", "creator")


def _key(value: str) -> dict[str, str]:
    return {**ALICE, "Idempotency-Key": value}


async def test_the_same_key_and_body_replays_the_first_response(client: httpx.AsyncClient) -> None:
    body = {"name": "lamp", "price_amount": 1500}
    first = await client.post("/v1/widgets", json=body, headers=_key("k1"))
    second = await client.post("/v1/widgets", json=body, headers=_key("k1"))
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert (await client.get("/v1/widgets")).json() == ["lamp"]


JSON_KEY = {**ALICE, "Idempotency-Key": "k", "content-type": "application/json"}


async def test_key_order_in_the_body_does_not_matter(client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/widgets", content=b'{"name":"a","price_amount":1}', headers=JSON_KEY)
    second = await client.post("/v1/widgets", content=b'{"price_amount":1, "name":"a"}', headers=JSON_KEY)
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()


async def test_keys_are_scoped_to_the_caller(client: httpx.AsyncClient) -> None:
    body = {"name": "lamp", "price_amount": 1500}
    await client.post("/v1/widgets", json=body, headers=_key("shared-key"))
    bob = await client.post(
        "/v1/widgets",
        json={**body, "name": "desk"},
        headers={**auth_headers("bob", "creator"), "Idempotency-Key": "shared-key"},
    )
    assert bob.status_code == 201
    assert "idempotent-replayed" not in bob.headers


async def test_the_same_key_with_another_body_is_a_422(client: httpx.AsyncClient) -> None:
    await client.post("/v1/widgets", json={"name": "lamp", "price_amount": 1500}, headers=_key("k2"))
    reused = await client.post("/v1/widgets", json={"name": "lamp", "price_amount": 9999}, headers=_key("k2"))
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["code"] == "idempotency_key_reused"
    assert (await client.get("/v1/widgets")).json() == ["lamp"]


async def test_the_same_key_while_the_first_still_runs_is_a_409(client: httpx.AsyncClient) -> None:
    body = {"name": "slow-lamp", "price_amount": 100, "outcome": "slow"}
    first = asyncio.create_task(client.post("/v1/widgets", json=body, headers=_key("k3")))
    await asyncio.sleep(0.15)
    second = await client.post("/v1/widgets", json=body, headers=_key("k3"))
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_request_in_progress"
    assert second.headers["retry-after"] == "1"
    assert (await first).status_code == 201
    third = await client.post("/v1/widgets", json=body, headers=_key("k3"))
    assert third.headers["idempotent-replayed"] == "true"


async def test_a_missing_key_is_refused_and_nothing_is_stored(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/widgets", json={"name": "lamp", "price_amount": 1}, headers=ALICE)
    assert response.status_code == 400
    assert response.json()["code"] == "idempotency_key_required"
    assert (await client.get("/v1/widgets")).json() == []


async def test_a_business_refusal_is_the_stored_answer_for_its_key(client: httpx.AsyncClient) -> None:
    body = {"name": "lamp", "price_amount": 1, "outcome": "problem"}
    first = await client.post("/v1/widgets", json=body, headers=_key("k4"))
    second = await client.post("/v1/widgets", json=body, headers=_key("k4"))
    assert first.status_code == second.status_code == 409
    assert first.json()["code"] == "widget_conflict"
    assert second.headers["idempotent-replayed"] == "true"
    assert (await client.get("/v1/widgets")).json() == []  # the refused work was rolled back


async def test_an_unexpected_error_releases_the_key_so_a_retry_can_succeed(
    client: httpx.AsyncClient, widget_app: FastAPI
) -> None:
    body = {"name": "lamp", "price_amount": 1, "outcome": "crash"}
    widget_app.state.crash_next = True
    crashed = await client.post("/v1/widgets", json=body, headers=_key("k5"))
    assert crashed.status_code == 500
    assert crashed.json()["code"] == "internal_error"
    assert "hunter2" not in crashed.text
    assert "RuntimeError" not in crashed.text
    retried = await client.post("/v1/widgets", json=body, headers=_key("k5"))
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
