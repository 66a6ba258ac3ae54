from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from services.campaigns.app import create_app
from services.campaigns.config import Settings
from services.campaigns.tests.factories import Actors
from shared.testing import DatabaseFactory, app_client

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def database_url(database_factory: DatabaseFactory) -> Iterator[str]:
    url = database_factory.fresh("campaigns", SERVICE_DIR)
    yield url
    database_factory.drop(url)


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Deadlines may be a second away (a real deadline, reached by waiting); the scheduler polls quickly.
    return Settings(
        database_url=database_url,
        environment="test",
        log_json=True,
        min_campaign_duration_seconds=1,
        scheduler_poll_seconds=0.1,
        event_relay_enabled=False,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings)) as client:
        yield client


@pytest.fixture
def actors() -> Actors:
    return Actors()
