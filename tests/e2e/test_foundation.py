"""The foundation, end to end: real processes on loopback, every request through the gateway."""

from __future__ import annotations

import time

import httpx
import pytest

from shared.testing import auth_headers, user_token
from tests.e2e.conftest import read_log
from tools.stack import SERVICES, Stack

pytestmark = pytest.mark.e2e


def test_every_service_is_ready_behind_the_gateway(gateway: httpx.Client) -> None:
    response = gateway.get("/healthz")
    assert response.status_code == 200, response.text
    assert response.json()["services"] == {s: {"status": "ready"} for s in SERVICES}


def test_no_token_is_a_401_problem(gateway: httpx.Client) -> None:
    response = gateway.get("/v1/pledges")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    body = response.json()
    assert body["code"] == "missing_token"
    assert body["type"].endswith("missing_token")


def test_a_tampered_token_is_a_401(gateway: httpx.Client) -> None:
    token = user_token("alice", "operator")
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    response = gateway.get("/v1/pledges", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


def test_an_expired_token_is_a_401(gateway: httpx.Client) -> None:
    from shared.auth import issue_user_token
    from shared.settings import DEV_ISSUER, DEV_JWT_SECRET

    expired = issue_user_token(DEV_JWT_SECRET, "alice", ["backer"], issuer=DEV_ISSUER, ttl_seconds=-120)
    response = gateway.get("/v1/pledges", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.json()["code"] == "token_expired"


@pytest.mark.parametrize("path", ["/internal/events", "/internal/campaigns/x/reservations", "/readyz"])
def test_internal_routes_are_not_reachable_through_the_gateway(gateway: httpx.Client, path: str) -> None:
    response = gateway.post(path, headers=auth_headers("oscar", "operator"), json={})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_services_verify_identity_themselves_and_refuse_a_bare_header(stack: Stack) -> None:
    """Even reached directly (inside the network), a service trusts signatures, not headers."""
    direct = httpx.post(
        stack.config.url("pledges") + "/internal/events",
        headers={"X-User-Id": "oscar", "X-Roles": "service"},
        json={},
        timeout=5,
    )
    assert direct.status_code == 401
    with_user_token = httpx.post(
        stack.config.url("pledges") + "/internal/events", headers=auth_headers("oscar", "operator"), json={}, timeout=5
    )
    assert with_user_token.status_code in (403, 404)


def test_the_request_id_is_echoed_and_reaches_the_service(gateway: httpx.Client, stack: Stack) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = gateway.get(
        "/v1/pledges/does-not-exist",
        headers={
            **auth_headers("alice", "backer"),
            "X-Request-ID": "e2e-request-123",
            "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
        },
    )
    assert response.headers["x-request-id"] == "e2e-request-123"
    for single in ("date", "server", "x-request-id", "content-type"):
        assert len(response.headers.get_list(single)) == 1, single
    generated = gateway.get("/v1/pledges", headers=auth_headers("alice", "backer"))
    assert len(generated.headers["x-request-id"]) == 32
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = read_log(stack, "pledges")
        if "e2e-request-123" in log:
            break
        time.sleep(0.1)
    assert "e2e-request-123" in log, "the service did not log the forwarded request id"
    assert trace_id in log, "the service did not receive the W3C traceparent"


def test_the_merged_openapi_lists_every_public_route_of_every_service(gateway: httpx.Client, stack: Stack) -> None:
    merged = gateway.get("/openapi.json").json()
    assert "x-merge-conflicts" not in merged, merged.get("x-merge-conflicts")
    assert "x-unavailable-services" not in merged
    operation_ids: list[str] = []
    for service in SERVICES:
        own = httpx.get(stack.config.url(service) + "/openapi.json", timeout=5).json()
        for path, item in own["paths"].items():
            if not path.startswith("/v1/"):
                continue
            for method in item:
                assert method in merged["paths"][path], f"{service} {method.upper()} {path} missing"
                assert merged["paths"][path][method]["x-service"] == service
    for path, item in merged["paths"].items():
        assert not path.startswith("/internal"), path
        operation_ids += [op["operationId"] for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))
    assert "bearerAuth" in merged["components"]["securitySchemes"]
    assert gateway.get("/docs").status_code == 200


def test_a_stopped_service_is_a_502_problem_and_recovers(gateway: httpx.Client, stack: Stack) -> None:
    headers = auth_headers("oscar", "operator")
    stack.stop("refunds")
    try:
        started = time.perf_counter()
        response = gateway.get("/v1/refund-batches", headers=headers)
        elapsed = time.perf_counter() - started
        assert response.status_code == 502
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "upstream_unavailable"
        assert elapsed < 2.5
        health = gateway.get("/healthz")
        assert health.status_code == 503
        assert health.json()["services"]["refunds"]["status"] == "unavailable"
    finally:
        stack.start("refunds")
    assert gateway.get("/v1/refund-batches", headers=headers).status_code != 502


def test_the_local_stripe_server_runs_in_the_stack_and_answers_the_official_sdk(stack: Stack) -> None:
    import stripe

    client = stripe.StripeClient(
        "sk_test_local", base_addresses={"api": stack.config.url("stripe")}, max_network_retries=0
    )
    customer = client.v1.customers.create(params={"email": "e2e@example.com"})
    assert customer.id.startswith("cus_")
    assert client.v1.customers.retrieve(customer.id).email == "e2e@example.com"
