"""Pledges tests: the service in-process, the real local Stripe server and the real campaigns service as
subprocesses on loopback (driven over HTTP only — nothing of campaigns is imported here)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.pledges.app import create_app
from services.pledges.config import Settings
from services.pledges.tests.processes import CampaignsProcess, LoopbackApp, RefundsProcess
from shared.testing import DatabaseFactory, app_client
from stripe_local.testing import StripeLocalProcess, free_port, stripe_local_session_server

SERVICE_DIR = Path(__file__).resolve().parents[1]
ROOT = SERVICE_DIR.parents[1]
WEBHOOK_SECRET = "whsec_test_pledges_0123456789abcdef"

__all__ = ["stripe_local_session_server"]


@pytest.fixture(scope="session")
def campaigns_server(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One campaigns process for the session (each test makes its own campaigns); no event relay."""
    url = database_factory.fresh("campaigns", ROOT / "services" / "campaigns")
    with CampaignsProcess(url, tmp_path_factory.mktemp("campaigns")) as process:
        yield process.url


@pytest.fixture
def stripe_server(stripe_local_session_server: StripeLocalProcess) -> Iterator[StripeLocalProcess]:
    yield stripe_local_session_server
    stripe_local_session_server.local("DELETE", "faults")


@pytest.fixture
def database_url(database_factory: DatabaseFactory) -> Iterator[str]:
    url = database_factory.fresh("pledges", SERVICE_DIR)
    yield url
    database_factory.drop(url)


@pytest.fixture
def refunds_port() -> int:
    """Where the refunds service is (or will be) listening: nothing answers there unless a test starts it."""
    return free_port()


@pytest.fixture
def settings(
    database_url: str, campaigns_server: str, stripe_server: StripeLocalProcess, refunds_port: int
) -> Settings:
    return Settings(
        database_url=database_url,
        environment="test",
        log_json=True,
        campaigns_url=campaigns_server,
        refunds_url=f"http://127.0.0.1:{refunds_port}",
        stripe_api_base=stripe_server.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        worker_enabled=False,  # tests run the worker's polls themselves, deterministically
        event_relay_enabled=False,  # no pledge.refunded sent to the session's campaigns process
        campaign_cache_seconds=0,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(app) as client:
        yield client


@pytest.fixture
async def campaigns(campaigns_server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=campaigns_server, timeout=30) as client:
        yield client


@pytest.fixture
def refunds_process(
    settings: Settings,
    database_factory: DatabaseFactory,
    campaigns_server: str,
    stripe_server: StripeLocalProcess,
    refunds_port: int,
    tmp_path: Path,
) -> Iterator[RefundsProcess]:
    """The real refunds service on ``refunds_port`` (not started: see ``refunds_service``), reporting outcomes to
    a second pledges replica on the test's database."""
    replica = LoopbackApp(create_app(settings)).start()
    url = database_factory.fresh("refunds", ROOT / "services" / "refunds")
    process = RefundsProcess(
        url,
        tmp_path,
        pledges_url=replica.url,
        campaigns_url=campaigns_server,
        stripe_url=stripe_server.url,
        port=refunds_port,
    )
    try:
        yield process
    finally:
        process.stop()
        replica.stop()
        database_factory.drop(url)


@pytest.fixture
def refunds_service(refunds_process: RefundsProcess) -> Iterator[RefundsProcess]:
    with refunds_process:
        yield refunds_process
