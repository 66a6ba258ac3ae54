from __future__ import annotations

import httpx


async def test_readyz_reports_the_database_it_reached(client: httpx.AsyncClient, database_url: str) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    expected = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    assert response.json() == {"status": "ready", "database": expected}


async def test_unknown_route_is_a_problem_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/nothing-here", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "abc-123"
    body = response.json()
    assert body["code"] == "not_found"
    assert body["status"] == 404
