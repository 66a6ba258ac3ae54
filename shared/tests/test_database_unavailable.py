"""When the database cannot serve (refused, pool exhausted, too many clients), callers get a 503 problem they
can retry, never a 500 and never internals."""

from __future__ import annotations

import asyncio
import socket

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from shared.db import create_engine, is_transient_db_error
from shared.testing import BACKEND, _pg_execute, app_client, auth_headers
from shared.tests.conftest import build_app


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_an_unreachable_database_is_a_503_problem_with_retry_after() -> None:
    app = build_app(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nowhere")
    async with app_client(app) as client:
        read = await client.get("/v1/widgets")
        write = await client.post(
            "/v1/widgets-plain", json={"name": "a", "price_amount": 5}, headers=auth_headers("alice", "creator")
        )
    for response in (read, write):
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert response.json()["code"] == "database_unavailable"
        assert "asyncpg" not in response.text
        assert "127.0.0.1" not in response.text


async def test_a_503_keeps_the_connection_open_for_the_next_request() -> None:
    """Through a real HTTP server: the gateway keeps connections to a service alive, and a service that closed
    one after its 503 made the gateway's next request on it fail (a 502 for somebody else's request)."""
    import uvicorn

    app = build_app(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nowhere")
    port = _closed_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="critical", access_log=False))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = []
        for _ in range(3):
            writer.write(b"GET /v1/widgets HTTP/1.1\r\nhost: test\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
            await reader.readexactly(length)
            answers.append((head.split(b" ")[1], b"connection: close" in head.lower()))
        writer.close()
    finally:
        server.should_exit = True
        await serving
    assert answers == [(b"503", False)] * 3


async def test_refused_connections_and_an_exhausted_pool_are_transient(shared_database_url: str) -> None:
    refused = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nowhere")
    with pytest.raises(OSError, match="Connect call failed") as caught:
        async with refused.connect() as conn:
            await conn.execute(text("SELECT 1"))
    assert is_transient_db_error(caught.value)
    await refused.dispose()

    engine = create_engine(shared_database_url, pool_size=2, pool_timeout=0.1)
    held = [await engine.connect() for _ in range(2)]  # the whole pool (no overflow)
    try:
        with pytest.raises(sa_exc.TimeoutError) as timed_out:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert is_transient_db_error(timed_out.value)
    finally:
        for conn in held:
            await conn.close()
        await engine.dispose()


async def test_a_constraint_violation_is_not_transient(shared_database_url: str) -> None:
    engine = create_engine(shared_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO widgets (id, name, price_amount, currency) VALUES (:i, 'x', 1, 'USD')"),
                {"i": "00000000000000000000000000000001"},
            )
            with pytest.raises(sa_exc.IntegrityError) as caught:
                await conn.execute(
                    text("INSERT INTO widgets (id, name, price_amount, currency) VALUES (:i, 'x', 1, 'USD')"),
                    {"i": "00000000000000000000000000000002"},
                )
        assert not is_transient_db_error(caught.value)
    finally:
        await engine.dispose()


@pytest.mark.skipif(BACKEND != "postgresql", reason="server-side connection kill: PostgreSQL only")
async def test_connections_killed_by_the_server_cost_at_most_a_retryable_503(shared_database_url: str) -> None:
    """No pre-ping on checkout (it costs round trips per request): a connection the database dropped fails one
    request with a 503, the pool discards it and its peers, and the next request is served."""
    name = shared_database_url.rsplit("/", 1)[1]
    app = build_app(shared_database_url)
    async with app_client(app) as client:
        for _ in range(3):  # pooled connections
            assert (await client.get("/v1/widgets")).status_code == 200
        await _pg_execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        statuses = [(await client.get("/v1/widgets")).status_code for _ in range(3)]
    print("after the kill:", statuses)
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[-1] == 200, statuses
