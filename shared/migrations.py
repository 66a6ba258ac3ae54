"""Alembic, one history per service. ``env.py`` of each service calls :func:`run_env`; tools and tests call
:func:`upgrade`. Schemas are only ever built by running the migrations."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Literal

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from shared.db import UTCDateTime, create_engine

FILE_TEMPLATE = "%%(year)d-%%(month).2d-%%(day).2d-%%(hour).2d%%(minute).2d_%%(slug)s"


def alembic_config(service_dir: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(service_dir / "migrations"))
    config.set_main_option("file_template", FILE_TEMPLATE)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["database_url"] = url
    return config


def upgrade(service_dir: Path, url: str, revision: str = "head") -> None:
    """Migrate a database. Safe to call from inside a running event loop (it runs in its own thread)."""
    config = alembic_config(service_dir, url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(config, revision)
        return
    errors: list[BaseException] = []

    def target() -> None:
        try:
            command.upgrade(config, revision)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def downgrade(service_dir: Path, url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(service_dir, url), revision)


def _render_item(type_: str, obj: Any, _autogen_context: Any) -> str | Literal[False]:
    # Our TypeDecorator is a Python-side conversion; the column itself is a plain timezone-aware timestamp.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_env(metadata: MetaData, default_url: str) -> None:
    """Body of every service's ``migrations/env.py``."""
    url: str = context.config.attributes.get("database_url") or default_url
    if context.is_offline_mode():
        context.configure(
            url=url, target_metadata=metadata, literal_binds=True, render_as_batch=True, render_item=_render_item
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, metadata))


def _configure_and_run(connection: Connection, metadata: MetaData) -> None:
    options: dict[str, Any] = {
        "connection": connection,
        "target_metadata": metadata,
        "compare_type": True,
        "render_item": _render_item,
    }
    if connection.dialect.name == "sqlite":
        options["render_as_batch"] = True  # SQLite can only ALTER by rebuilding tables
    context.configure(**options)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str, metadata: MetaData) -> None:
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure_and_run, metadata)
            await connection.commit()
    finally:
        await engine.dispose()


def is_at_head(service_dir: Path, url: str) -> bool:
    """True when the database is at this code's head revision, or past it: a revision this code does not know
    was written by a newer release (after a rollback the older pods must still start; migrations are written
    expand-then-contract so that the previous release runs on the next schema)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(service_dir, url))
    heads = set(script.get_heads())

    async def current() -> set[str]:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(lambda c: set(MigrationContext.configure(c).get_current_heads()))
        finally:
            await engine.dispose()

    try:
        revisions = asyncio.run(current())
    except Exception:
        return False  # not reachable yet: not at head
    if revisions == heads:
        return True
    return bool(revisions) and all(_unknown(script, revision) for revision in revisions)


def _unknown(script: Any, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        return script.get_revision(revision) is None
    except CommandError:
        return True
