"""Fault injection by configuration: a fraction of 500s, 429s and dropped connections, added
latency - observable by the client and counted by the server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from stripe_local.config import Settings
from stripe_local.http import ConnectionDropped
from stripe_local.testing import StripeLocalProcess

from .conftest import Api, make_settings, serve


async def test_added_latency_is_observable(api: Api) -> None:
    await api.local("POST", "faults", {"latency_ms": 150})
    started = time.monotonic()
    await api.ok("GET", "/v1/customers")
    assert time.monotonic() - started >= 0.15


async def test_an_injected_429_looks_like_stripes_rate_limit(api: Api) -> None:
    await api.local("POST", "faults", {"error_rate": 1, "mix": {"429": 1}})
    response = await api.get("/v1/customers")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit"
    assert (await api.local("GET", "faults"))["injected"] == {"429": 1}


async def test_a_dropped_connection_happens_after_the_work_is_committed(api: Api) -> None:
    await api.local("POST", "faults", {"error_rate": 1, "mix": {"drop": 1}, "max_faults": 1})
    with pytest.raises(ConnectionDropped):
        await api.post("/v1/customers", {"email": "lost-answer@example.com"}, Idempotency_Key="k-drop")
    retried = await api.post("/v1/customers", {"email": "lost-answer@example.com"}, Idempotency_Key="k-drop")
    assert retried.status_code == 200
    assert retried.headers["idempotent-replayed"] == "true"
    customers = await api.ok("GET", "/v1/customers", {"email": "lost-answer@example.com"})
    assert [c["id"] for c in customers["data"]] == [retried.json()["id"]]


async def test_the_error_rate_is_a_fraction_and_counted(tmp_path: Path) -> None:
    async with serve(make_settings(tmp_path, seed=7)) as api:
        await api.local("POST", "faults", {"error_rate": 0.3, "mix": {"500": 1}})
        statuses = [(await api.get("/v1/customers")).status_code for _ in range(200)]
        injected = (await api.local("GET", "faults"))["injected"]["500"]
        assert statuses.count(500) == injected
        assert 30 <= injected <= 90


async def test_faults_can_target_one_path(api: Api) -> None:
    await api.local("POST", "faults", {"error_rate": 1, "mix": {"500": 1}, "path_prefix": "/v1/refunds"})
    assert (await api.get("/v1/customers")).status_code == 200
    assert (await api.get("/v1/refunds")).status_code == 500


async def test_an_invalid_fault_configuration_is_refused(api: Api) -> None:
    response = await api.client.post("/_local/faults", json={"error_rate": 2})
    assert response.status_code == 400
    response = await api.client.post("/_local/faults", json={"mix": {"teapot": 1}})
    assert response.status_code == 400


def test_faults_and_webhook_options_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "STRIPE_LOCAL_FAULT_RATE": "0.25",
            "STRIPE_LOCAL_FAULT_MIX": "500=2,drop=1",
            "STRIPE_LOCAL_LATENCY_MS": "5",
            "STRIPE_LOCAL_WEBHOOK_DUPLICATE_RATE": "0.5",
            "STRIPE_LOCAL_WEBHOOK_REORDER": "true",
            "STRIPE_LOCAL_WEBHOOK_ENDPOINTS": '[{"url": "http://127.0.0.1:9/h", "secret": "whsec_x"}]',
            "STRIPE_LOCAL_PORT": "9999",
        },
        port=12112,
    )
    assert (settings.fault_rate, settings.fault_mix, settings.latency_ms) == (0.25, {"500": 2.0, "drop": 1.0}, 5.0)
    assert (settings.webhook_duplicate_rate, settings.webhook_reorder) == (0.5, True)
    assert settings.webhook_endpoints[0]["secret"] == "whsec_x"
    assert settings.port == 12112  # the CLI flag wins over the environment


async def test_the_rate_limit_is_per_endpoint_and_configurable(api: Api) -> None:
    await api.local("POST", "rate_limit", {"limit_per_second": 2})
    statuses = [(await api.get("/v1/customers")).status_code for _ in range(4)]
    assert statuses[:2] == [200, 200]
    assert 429 in statuses
    assert (await api.get("/v1/payment_intents")).status_code == 200
    await api.local("POST", "rate_limit", {"limit_per_second": 0})
    statuses = [(await api.get("/v1/customers")).status_code for _ in range(30)]
    assert set(statuses) == {200}


async def test_a_real_socket_is_dropped(stripe_local_server: StripeLocalProcess) -> None:
    server = stripe_local_server
    server.local("POST", "faults", json={"error_rate": 1, "mix": {"drop": 1}, "max_faults": 1})
    headers = {"Authorization": "Bearer sk_test_x"}
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get(f"{server.url}/v1/customers", headers=headers)
        ok = await http.get(f"{server.url}/v1/customers", headers=headers)
    assert ok.status_code == 200
