"""Every service's models and its migrations describe the same schema: a column added to a model without a
migration (or a migration that drifts from its model) fails here, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import importlib
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData

from shared.db import create_engine
from shared.migrations import _render_item
from shared.testing import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]


def _differences(url: str, metadata: MetaData) -> list[Any]:
    async def compare() -> list[Any]:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda conn: compare_metadata(
                        MigrationContext.configure(
                            conn, opts={"compare_type": True, "render_item": _render_item, "target_metadata": metadata}
                        ),
                        metadata,
                    )
                )
        finally:
            await engine.dispose()

    return asyncio.run(compare())


@pytest.mark.parametrize("service", ["campaigns", "pledges", "refunds"])
def test_the_migrated_schema_is_the_models_schema(database_factory: DatabaseFactory, service: str) -> None:
    url = database_factory.fresh(service, ROOT / "services" / service)
    metadata = importlib.import_module(f"services.{service}.models").Base.metadata
    assert _differences(url, metadata) == []
