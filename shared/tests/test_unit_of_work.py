from __future__ import annotations

import httpx

from shared.testing import auth_headers

ALICE = auth_headers("alice", "creator")


async def test_work_is_committed_before_the_response_is_sent(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/widgets-plain", json={"name": "a", "price_amount": 5}, headers=ALICE)
    assert created.status_code == 201
    assert (await client.get("/v1/widgets")).json() == ["a"]


async def test_a_refused_request_stores_nothing(client: httpx.AsyncClient) -> None:
    refused = await client.post(
        "/v1/widgets-plain", json={"name": "a", "price_amount": 5, "outcome": "problem"}, headers=ALICE
    )
    assert refused.status_code == 409
    assert (await client.get("/v1/widgets")).json() == []


async def test_a_failed_commit_is_an_error_never_a_2xx(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/widgets-plain", json={"name": "dup", "price_amount": 5, "outcome": "duplicate-at-commit"}, headers=ALICE
    )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "IntegrityError" not in response.text
    assert "INSERT" not in response.text
    assert (await client.get("/v1/widgets")).json() == []


async def test_money_must_be_an_integer_and_input_is_never_echoed(client: httpx.AsyncClient) -> None:
    as_float = await client.post("/v1/widgets-plain", json={"name": "a", "price_amount": 12.5}, headers=ALICE)
    as_card = await client.post(
        "/v1/widgets-plain", json={"name": "a", "price_amount": "4242424242424242"}, headers=ALICE
    )
    bad_currency = await client.post(
        "/v1/widgets-plain", json={"name": "a", "price_amount": 1, "currency": "XYZ"}, headers=ALICE
    )
    for response in (as_float, as_card, bad_currency):
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "validation_error"
    assert as_float.json()["errors"][0]["loc"] == ["body", "price_amount"]
    assert "4242424242424242" not in as_card.text
    assert (await client.get("/v1/widgets")).json() == []


async def test_malformed_json_is_a_problem_not_a_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/widgets-plain", content=b"{not json", headers={**ALICE, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_method_not_allowed_is_a_problem(client: httpx.AsyncClient) -> None:
    response = await client.delete("/v1/widgets")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
