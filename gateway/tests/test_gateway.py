"""In-process gateway behaviour against real TCP upstreams that misbehave (refuse, hang)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from gateway.app import create_app
from gateway.config import Settings
from shared.auth import SERVICE_AUDIENCE, SERVICE_ISSUER
from shared.settings import DEV_SERVICE_SECRET
from shared.testing import asgi_client, auth_headers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def hanging_upstream() -> AsyncIterator[str]:
    """Accepts connections and never answers: a service that is up but stuck."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for writer in held:
        writer.close()
    server.close()


def _settings(**overrides: object) -> Settings:
    dead = f"http://127.0.0.1:{_free_port()}"
    values: dict[str, object] = {
        "campaigns_url": dead,
        "pledges_url": dead,
        "refunds_url": dead,
        "log_json": True,
        "environment": "test",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_a_stopped_service_is_a_502_problem_quickly() -> None:
    async with asgi_client(create_app(_settings())) as client:
        started = time.perf_counter()
        response = await client.get("/v1/pledges", headers=auth_headers("alice", "backer"))
        elapsed = time.perf_counter() - started
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "upstream_unavailable"
    assert elapsed < 2.0


async def test_a_hanging_service_is_a_504_problem_after_the_upstream_timeout(hanging_upstream: str) -> None:
    settings = _settings(pledges_url=hanging_upstream, upstream_timeout_seconds=0.3)
    async with asgi_client(create_app(settings)) as client:
        started = time.perf_counter()
        response = await client.get("/v1/pledges", headers=auth_headers("alice", "backer"))
        elapsed = time.perf_counter() - started
    assert response.status_code == 504
    assert response.json()["code"] == "upstream_timeout"
    assert 0.3 <= elapsed < 2.0


async def test_the_rate_limit_answers_429_with_retry_after_per_client() -> None:
    async with asgi_client(create_app(_settings(rate_limit="3/minute"))) as client:
        alice = auth_headers("alice", "backer")
        statuses = [(await client.get("/v1/pledges", headers=alice)).status_code for _ in range(4)]
        other = await client.get("/v1/pledges", headers=auth_headers("bob", "backer"))
        limited = await client.get("/v1/pledges", headers=alice)
    assert statuses == [502, 502, 502, 429]
    assert other.status_code == 502  # bob has his own budget
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["code"] == "rate_limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-jwt",
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l",
        # a service token, valid inside the cluster, is refused from outside
        "Bearer "
        + jwt.encode(
            {
                "sub": "pledges",
                "roles": ["service"],
                "iss": SERVICE_ISSUER,
                "aud": SERVICE_AUDIENCE,
                "iat": 0,
                "exp": 2**31,
            },
            DEV_SERVICE_SECRET,
            algorithm="HS256",
        ),
    ],
)
async def test_bad_credentials_are_refused_before_any_routing(authorization: str) -> None:
    async with asgi_client(create_app(_settings())) as client:
        response = await client.get("/v1/campaigns", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


async def test_cors_preflight_is_answered_for_configured_origins_only() -> None:
    settings = _settings(cors_allow_origins=["https://app.example"])
    async with asgi_client(create_app(settings)) as client:
        preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
        allowed = await client.options("/v1/pledges", headers={"Origin": "https://app.example", **preflight})
        denied = await client.options("/v1/pledges", headers={"Origin": "https://evil.example", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in denied.headers


async def test_healthz_reports_each_service_and_degrades_when_one_is_down() -> None:
    async with asgi_client(create_app(_settings())) as client:
        response = await client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert set(body["services"]) == {"campaigns", "pledges", "refunds"}
    assert all(s["status"] == "unavailable" for s in body["services"].values())


async def test_request_id_is_echoed_and_generated(hanging_upstream: str) -> None:
    async with asgi_client(create_app(_settings())) as client:
        echoed = await client.get("/v1/nowhere", headers={"X-Request-ID": "req-42"})
        generated = await client.get("/v1/nowhere")
    assert echoed.headers["x-request-id"] == "req-42"
    assert len(generated.headers["x-request-id"]) == 32
    assert echoed.status_code == 404


async def test_unroutable_paths_are_404_without_touching_a_service() -> None:
    async with asgi_client(create_app(_settings())) as client:
        internal = await client.get("/internal/events", headers=auth_headers("oscar", "operator"))
        traversal = await client.get("/v1/campaigns/%2e%2e/%2e%2e/internal/events")
    assert internal.status_code == 404
    assert traversal.status_code == 404
    assert internal.headers["content-type"] == "application/problem+json"


async def test_the_docs_page_works_offline_with_assets_served_by_the_gateway() -> None:
    async with asgi_client(create_app(_settings())) as client:
        page = await client.get("/docs")
        script = await client.get("/docs/assets/swagger-ui-bundle.js")
        style = await client.get("/docs/assets/swagger-ui.css")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "/openapi.json" in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text  # no CDN: nothing outside the gateway
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.text[:2000]
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")


@pytest.fixture
async def slow_streaming_upstream() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """Answers with a chunked body: one chunk at once, the rest only after `release` is set."""
    release = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\ntransfer-encoding: chunked\r\n\r\n")
        first = b"x" * 100_000
        writer.write(b"%x\r\n%s\r\n" % (len(first), first))
        await writer.drain()
        await release.wait()
        rest = b"y" * 400_000
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(rest), rest))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", release
    server.close()


async def test_large_responses_are_streamed_not_buffered(slow_streaming_upstream: tuple[str, asyncio.Event]) -> None:
    """Through a real HTTP server (httpx's ASGITransport would buffer the body itself)."""
    import uvicorn

    url, release = slow_streaming_upstream
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(_settings(refunds_url=url)), port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            headers = auth_headers("oscar", "operator")
            async with client.stream("GET", "/v1/refund-batches/1/report", headers=headers) as response:
                assert response.status_code == 200
                received = b""
                async for chunk in response.aiter_raw():
                    received += chunk
                    if len(received) >= 100_000 and not release.is_set():
                        # The first part reached the client while the service still holds back the rest.
                        release.set()
        assert received == b"x" * 100_000 + b"y" * 400_000
    finally:
        server.should_exit = True
        await serving


@pytest.fixture
async def quiet_event_stream() -> AsyncIterator[str]:
    """An event stream that stays silent 0.6 s between events, then ends."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for n in range(3):
            await asyncio.sleep(0.6)
            event = b"data: %d\n\n" % n
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


async def test_an_event_stream_may_stay_quiet_longer_than_an_answer_may_take(quiet_event_stream: str) -> None:
    """A progress stream idles between events by design: the read timeout that bounds an answer (504) must not
    cut it; the stream's own idle timeout applies."""
    settings = _settings(refunds_url=quiet_event_stream, upstream_timeout_seconds=0.3, stream_idle_timeout_seconds=5)
    headers = auth_headers("oscar", "operator")
    async with asgi_client(create_app(settings)) as client:
        stream = await client.get(
            "/v1/refund-batches/1/events", headers={**headers, "accept": "text/event-stream"}, timeout=10
        )
        assert stream.status_code == 200
        assert stream.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"
        # The same silence in an ordinary answer is a stalled upstream: the body is cut.
        cut = await client.get("/v1/refund-batches/1/events", headers=headers, timeout=10)
        assert "data: 0" not in cut.text


async def test_replicas_share_the_rate_limit_through_redis() -> None:
    """Two gateways, one budget: Redis holds the counters (it runs on these machines, as in production)."""
    import uuid

    from gateway.ratelimit import ClientRateLimiter

    first = ClientRateLimiter("3/minute", "redis://127.0.0.1:6379")
    second = ClientRateLimiter("3/minute", "redis://127.0.0.1:6379")
    client = f"test-client-{uuid.uuid4().hex}"
    results = [await first.hit(client), await second.hit(client), await first.hit(client), await second.hit(client)]
    assert results[:3] == [None, None, None]
    assert results[3] is not None
    assert results[3] >= 1
