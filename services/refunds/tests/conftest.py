from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from services.refunds.app import create_app
from services.refunds.config import Settings
from shared.testing import DatabaseFactory, app_client

SERVICE_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def database_url(database_factory: DatabaseFactory) -> Iterator[str]:
    url = database_factory.fresh("refunds", SERVICE_DIR)
    yield url
    database_factory.drop(url)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, environment="test", log_json=True)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings)) as client:
        yield client
