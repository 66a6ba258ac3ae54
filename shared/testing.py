"""Test helpers shared by every service's tests: a migrated, isolated database per test, on SQLite (default)
or PostgreSQL (``CROWDFUND_TEST_DATABASE=postgresql``), and an in-process client with the app's lifespan."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
from fastapi import FastAPI

from shared.auth import issue_user_token
from shared.migrations import upgrade
from shared.settings import DEV_ISSUER, DEV_JWT_SECRET

T = TypeVar("T")

BACKEND = os.environ.get("CROWDFUND_TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_DSN = os.environ.get("CROWDFUND_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even if an event loop is running in this thread."""
    result: list[T] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _asyncpg_url(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"


async def _pg_execute(*statements: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


class DatabaseFactory:
    """Migrates one template database per service per test session; hands out a fresh copy per test."""

    def __init__(self) -> None:
        self.backend = BACKEND
        self._dir = Path(tempfile.mkdtemp(prefix="crowdfund-test-"))
        self._templates: dict[str, str] = {}
        self._created: list[str] = []
        self._tag = uuid.uuid4().hex[:8]

    def _template(self, service: str, service_dir: Path) -> str:
        if service in self._templates:
            return self._templates[service]
        if self.backend == "postgresql":
            name = f"cf_tpl_{service}_{self._tag}"
            run_sync(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'))
            self._created.append(name)
            upgrade(service_dir, _asyncpg_url(POSTGRES_ADMIN_DSN, name))
            self._templates[service] = name
        else:
            path = self._dir / f"template_{service}.sqlite3"
            upgrade(service_dir, f"sqlite+aiosqlite:///{path}")
            self._templates[service] = str(path)
        return self._templates[service]

    def fresh(self, service: str, service_dir: Path) -> str:
        """A new migrated database for one test; returns its SQLAlchemy URL."""
        template = self._template(service, service_dir)
        if self.backend == "postgresql":
            name = f"cf_t_{service}_{uuid.uuid4().hex[:12]}"
            run_sync(_pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            self._created.append(name)
            return _asyncpg_url(POSTGRES_ADMIN_DSN, name)
        path = self._dir / f"{service}_{uuid.uuid4().hex[:12]}.sqlite3"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"

    def drop(self, url: str) -> None:
        if self.backend == "postgresql":
            name = url.rsplit("/", 1)[1]
            run_sync(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            if name in self._created:
                self._created.remove(name)
        else:
            path = Path(url.split("///", 1)[1])
            for suffix in ("", "-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        if self.backend == "postgresql" and self._created:
            run_sync(_pg_execute(*(f'DROP DATABASE IF EXISTS "{n}" WITH (FORCE)' for n in self._created)))
        shutil.rmtree(self._dir, ignore_errors=True)


def user_token(subject: str, *roles: str) -> str:
    return issue_user_token(DEV_JWT_SECRET, subject, roles or ("backer",), issuer=DEV_ISSUER)


def auth_headers(subject: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token(subject, *roles)}"}


@asynccontextmanager
async def app_client(app: FastAPI, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client with the app's lifespan running (engine, http clients, workers)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # see what a client sees
        async with httpx.AsyncClient(transport=transport, base_url=base_url, timeout=30) as client:
            yield client


@asynccontextmanager
async def asgi_lifespan(app: Any) -> AsyncIterator[None]:
    """Run any ASGI app's lifespan (startup before the block, shutdown after), as a server would."""
    receive_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await receive_queue.put({"type": "lifespan.startup"})

    async def receive() -> dict[str, Any]:
        return await receive_queue.get()

    async def send(message: dict[str, Any]) -> None:
        await sent.put(message)

    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    started = await sent.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan startup failed: {started}")
    try:
        yield
    finally:
        await receive_queue.put({"type": "lifespan.shutdown"})
        await sent.get()
        await task


@asynccontextmanager
async def asgi_client(app: Any, base_url: str = "http://testserver") -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_lifespan(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url=base_url, timeout=30
        ) as client:
            yield client


def mentions_number(text: str, number: int | str) -> bool:
    """Whether ``number`` appears in ``text`` as a number of its own, not as digits inside an id (a random UUID
    contains a given 4- or 5-digit run often enough to make a substring check flaky)."""
    return re.search(rf"(?<![\w-]){re.escape(str(number))}(?![\w-])", text) is not None
