from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.tests.fakes import FakeCampaigns, FakePledges, LoopbackServer
from shared.testing import DatabaseFactory, app_client
from stripe_local.testing import StripeLocalProcess

SERVICE_DIR = Path(__file__).resolve().parents[1]
WEBHOOK_SECRET = "whsec_refunds_tests_0123456789"


@pytest.fixture
def database_url(database_factory: DatabaseFactory) -> Iterator[str]:
    url = database_factory.fresh("refunds", SERVICE_DIR)
    yield url
    database_factory.drop(url)


@pytest.fixture(scope="session")
def stripe_session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeLocalProcess]:
    """One local Stripe server for the session (PaymentIntents are unique per test); fast async transitions."""
    path = tmp_path_factory.mktemp("stripe_local") / "stripe_local.sqlite3"
    with StripeLocalProcess(db_path=path, env={"STRIPE_LOCAL_ASYNC_DELAY_SECONDS": "0.5"}) as server:
        yield server


@pytest.fixture
def stripe_server(stripe_session_server: StripeLocalProcess) -> Iterator[StripeLocalProcess]:
    """The session's Stripe server, with faults and its rate limiter reset after each test."""
    yield stripe_session_server
    stripe_session_server.local("DELETE", "faults")
    stripe_session_server.local("POST", "rate_limit", json={"limit_per_second": 0})


@pytest.fixture(scope="session")
def fake_pledges_session() -> Iterator[tuple[FakePledges, LoopbackServer]]:
    fake = FakePledges()
    server = LoopbackServer(fake.app).start()
    yield fake, server
    server.stop()


@pytest.fixture
def fake_pledges(fake_pledges_session: tuple[FakePledges, LoopbackServer]) -> Iterator[FakePledges]:
    fake, _ = fake_pledges_session
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture(scope="session")
def fake_campaigns_session() -> Iterator[tuple[FakeCampaigns, LoopbackServer]]:
    fake = FakeCampaigns()
    server = LoopbackServer(fake.app).start()
    yield fake, server
    server.stop()


@pytest.fixture
def fake_campaigns(fake_campaigns_session: tuple[FakeCampaigns, LoopbackServer]) -> FakeCampaigns:
    return fake_campaigns_session[0]


@pytest.fixture
def campaign_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def settings(
    database_url: str,
    stripe_server: StripeLocalProcess,
    fake_pledges_session: tuple[FakePledges, LoopbackServer],
    fake_campaigns_session: tuple[FakeCampaigns, LoopbackServer],
) -> Settings:
    """Workers off: API tests decide when work happens. Worker tests turn them on."""
    return Settings(
        database_url=database_url,
        environment="test",
        log_json=True,
        log_level="WARNING",
        pledges_url=fake_pledges_session[1].url,
        campaigns_url=fake_campaigns_session[1].url,
        stripe_api_base=stripe_server.url,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_rate_limit_per_second=0,
        worker_enabled=False,
        worker_poll_seconds=0.05,
        worker_retry_delay_seconds=0.2,
        worker_retry_max_delay_seconds=1.0,
        second_approval_threshold_amount=1_000_000,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings)) as client:
        yield client
