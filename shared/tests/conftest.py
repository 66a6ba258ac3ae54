"""A small test application built only from shared/ pieces, on a real database (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import String, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.app import create_service_app
from shared.db import TYPE_ANNOTATION_MAP, create_engine, new_metadata
from shared.errors import Conflict, problem_responses
from shared.idempotency import IDEMPOTENT, IdempotencyRecordMixin
from shared.money import Amount, Currency
from shared.outbox import InboxEventMixin, OutboxEventMixin, publish
from shared.settings import ServiceSettings
from shared.testing import BACKEND, POSTGRES_ADMIN_DSN, _asyncpg_url, _pg_execute, app_client, run_sync
from shared.unit_of_work import UnitOfWorkRoute, get_session


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map: ClassVar[dict[Any, Any]] = TYPE_ANNOTATION_MAP


class IdempotencyRecord(IdempotencyRecordMixin, Base):
    pass


class OutboxEvent(OutboxEventMixin, Base):
    pass


class InboxEvent(InboxEventMixin, Base):
    pass


class Widget(Base):
    __tablename__ = "widgets"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    price_amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))


class WidgetCreate(BaseModel):
    name: str
    price_amount: Amount
    currency: Currency = "USD"
    outcome: str = "ok"  # ok | problem | crash | slow | duplicate-at-commit


class WidgetOut(BaseModel):
    id: uuid.UUID
    name: str
    price_amount: int
    currency: str
    count: int


def build_app(database_url: str) -> FastAPI:
    router = APIRouter(route_class=UnitOfWorkRoute)

    async def create(body: WidgetCreate, request: Request, session: AsyncSession) -> WidgetOut:
        if body.outcome == "slow":
            await asyncio.sleep(0.5)  # before any statement: no lock held while "waiting on the network"
        if body.outcome == "crash" and request.app.state.crash_next:
            request.app.state.crash_next = False
            raise RuntimeError("secret internal detail: password=hunter2")
        widget = Widget(name=body.name, price_amount=body.price_amount, currency=body.currency)
        session.add(widget)
        if body.outcome == "duplicate-at-commit":
            session.add(Widget(name=body.name, price_amount=1, currency="USD"))  # fails only at commit
            return WidgetOut(id=widget.id or uuid.uuid4(), name=body.name, price_amount=0, currency="USD", count=0)
        await session.flush()
        await publish(session, OutboxEvent, "widget.created", {"widget_id": str(widget.id)})
        if body.outcome == "problem":
            raise Conflict("No room for this widget.", code="widget_conflict")
        count = (await session.execute(select(func.count()).select_from(Widget))).scalar_one()
        return WidgetOut(
            id=widget.id, name=widget.name, price_amount=widget.price_amount, currency=widget.currency, count=count
        )

    @router.post("/v1/widgets", status_code=201, openapi_extra=IDEMPOTENT, responses=problem_responses(409))
    async def create_widget(
        body: WidgetCreate, request: Request, session: AsyncSession = Depends(get_session)
    ) -> WidgetOut:
        return await create(body, request, session)

    @router.post("/v1/widgets-plain", status_code=201)
    async def create_widget_plain(
        body: WidgetCreate, request: Request, session: AsyncSession = Depends(get_session)
    ) -> WidgetOut:
        return await create(body, request, session)

    @router.get("/v1/widgets")
    async def list_widgets(session: AsyncSession = Depends(get_session)) -> list[str]:
        return list((await session.execute(select(Widget.name).order_by(Widget.name))).scalars())

    settings = ServiceSettings(database_url=database_url, environment="test")
    app = create_service_app(
        name="widgets",
        title="Widgets",
        description="test app",
        settings=settings,
        routers=[router],
        idempotency_model=IdempotencyRecord,
    )
    app.state.crash_next = False
    return app


async def _create_schema(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


@pytest.fixture
def shared_database_url(tmp_path: Path) -> Iterator[str]:
    if BACKEND == "postgresql":
        name = f"cf_t_shared_{uuid.uuid4().hex[:12]}"
        run_sync(_pg_execute(f'CREATE DATABASE "{name}"'))
        url = _asyncpg_url(POSTGRES_ADMIN_DSN, name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'shared.sqlite3'}"
    run_sync(_create_schema(url))
    yield url
    if BACKEND == "postgresql":
        run_sync(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def widget_app(shared_database_url: str) -> FastAPI:
    return build_app(shared_database_url)


@pytest.fixture
async def client(widget_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(widget_app) as client:
        yield client
