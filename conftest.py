"""Fixtures for every test in the repository."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.testing import BACKEND, DatabaseFactory


def pytest_report_header() -> str:
    return f"crowdfund test database backend: {BACKEND}"


@pytest.fixture(scope="session")
def database_factory() -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory()
    yield factory
    factory.close()
