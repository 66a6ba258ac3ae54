"""Events between services: a transactional outbox, an at-least-once relay, and an idempotent inbox.

Producer: :func:`publish` adds an outbox row in the same transaction as the change it announces, so an
event exists exactly when the change was committed. A relay (one per replica; rows are claimed with a
lease, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL) POSTs each event to the internal ``/internal/events`` route of
every subscribed service, with a service token, until each has answered 2xx.

Consumer: :func:`inbox_router` records the event in an inbox table unique on the event id and runs its
handler in the same transaction, so a redelivered event is acknowledged and ignored.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
import structlog
from fastapi import APIRouter, Depends, FastAPI, status
from pydantic import BaseModel, Field
from sqlalchemy import JSON, Index, Integer, String, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.auth import ServiceTokenSource, require_service
from shared.db import Database, insert_for, utcnow
from shared.http import http_transport
from shared.unit_of_work import UnitOfWorkRoute, get_session

log = structlog.get_logger("shared.outbox")

MAX_BACKOFF_SECONDS = 300


class OutboxEventMixin:
    @declared_attr.directive
    def __tablename__(cls) -> str:
        return "outbox_events"

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (Index(None, "delivered_at", "available_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    available_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))


class InboxEventMixin:
    @declared_attr.directive
    def __tablename__(cls) -> str:
        return "inbox_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)  # the producer's event id: duplicates collide
    type: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class EventEnvelope(BaseModel):
    """What a relay sends to a consumer's ``POST /internal/events``."""

    id: uuid.UUID
    type: str = Field(max_length=100)
    source: str = Field(max_length=100)
    occurred_at: datetime
    payload: dict[str, Any]


class EventReceipt(BaseModel):
    status: str = Field(description="`accepted` the first time, `duplicate` for a redelivery.")


async def publish(session: AsyncSession, model: Any, event_type: str, payload: Mapping[str, Any]) -> uuid.UUID:
    """Write an event in the caller's transaction. It is delivered only if that transaction commits."""
    now = utcnow()
    event_id = uuid.uuid4()
    session.add(
        model(
            id=event_id,
            type=event_type,
            payload=dict(payload),
            created_at=now,
            available_at=now,
            attempts=0,
            delivered_to=[],
        )
    )
    return event_id


@dataclass(frozen=True)
class Subscriber:
    name: str
    url: str  # the consumer's events route, e.g. http://127.0.0.1:8002/internal/events
    event_types: frozenset[str]

    def wants(self, event_type: str) -> bool:
        return "*" in self.event_types or event_type in self.event_types


class OutboxRelay:
    def __init__(
        self,
        *,
        source: str,
        db: Database,
        model: Any,
        subscribers: Sequence[Subscriber],
        token_source: ServiceTokenSource,
        timeout_seconds: float = 5.0,
        poll_interval_seconds: float = 0.25,
        batch_size: int = 50,
        lease_seconds: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.source = source
        self.db = db
        self.model = model
        self.subscribers = list(subscribers)
        self.tokens = token_source
        self.poll_interval = poll_interval_seconds
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds, connect=2.0), transport=transport or http_transport()
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _claim(self) -> list[Any]:
        m = self.model
        now = utcnow()
        async with self.db.write_sessions() as session:
            stmt = (
                select(m)
                .where(
                    m.delivered_at.is_(None),
                    m.available_at <= now,
                    or_(m.claimed_until.is_(None), m.claimed_until < now),
                )
                .order_by(m.created_at)
                .limit(self.batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            events = list((await session.execute(stmt)).scalars())
            if events:
                await session.execute(
                    update(m).where(m.id.in_([e.id for e in events])).values(claimed_until=now + self.lease)
                )
            await session.commit()
            return events

    async def _deliver(self, event: Any, subscriber: Subscriber) -> str | None:
        envelope = {
            "id": str(event.id),
            "type": event.type,
            "source": self.source,
            "occurred_at": event.created_at.isoformat(),
            "payload": event.payload,
        }
        try:
            response = await self.http.post(
                subscriber.url, json=envelope, headers={"authorization": f"Bearer {self.tokens.token()}"}
            )
        except httpx.HTTPError as exc:
            return f"{subscriber.name}: {type(exc).__name__}"
        if response.is_success:
            return None
        return f"{subscriber.name}: HTTP {response.status_code}"

    async def relay_once(self) -> int:
        """Deliver one batch of due events; returns how many events were attempted."""
        events = await self._claim()
        for event in events:
            delivered = list(event.delivered_to or [])
            errors = []
            for subscriber in self.subscribers:
                if subscriber.name in delivered or not subscriber.wants(event.type):
                    continue
                error = await self._deliver(event, subscriber)
                if error is None:
                    delivered.append(subscriber.name)
                else:
                    errors.append(error)
            await self._record(event, delivered, errors)
        return len(events)

    async def _record(self, event: Any, delivered: list[str], errors: list[str]) -> None:
        m = self.model
        now = utcnow()
        values: dict[str, Any] = {"delivered_to": delivered, "claimed_until": None}
        if errors:
            attempts = event.attempts + 1
            values |= {
                "attempts": attempts,
                "available_at": now + timedelta(seconds=min(MAX_BACKOFF_SECONDS, 0.5 * 2**attempts)),
                "last_error": "; ".join(errors)[:500],
            }
            log.warning("outbox.delivery_failed", event_id=str(event.id), type=event.type, attempts=attempts)
        else:
            values |= {"delivered_at": now, "last_error": None}
        async with self.db.write_sessions() as session:
            await session.execute(update(m).where(m.id == event.id).values(**values))
            await session.commit()

    async def run(self) -> None:
        while True:
            try:
                attempted = await self.relay_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox.relay_error")
                attempted = 0
            if attempted < self.batch_size:
                await asyncio.sleep(self.poll_interval)


def outbox_relay_hook(
    *, source: str, model: Any, subscribers: Callable[[FastAPI], Sequence[Subscriber]], enabled: bool = True
) -> Callable[[FastAPI], Any]:
    """A lifespan hook that runs this replica's relay in the background (several replicas are safe)."""

    @asynccontextmanager
    async def hook(app: FastAPI) -> AsyncIterator[None]:
        settings = app.state.settings
        relay = OutboxRelay(
            source=source,
            db=app.state.db,
            model=model,
            subscribers=subscribers(app),
            token_source=ServiceTokenSource(settings.service_token_secret.get_secret_value(), source),
            timeout_seconds=settings.http_timeout_seconds,
        )
        app.state.outbox_relay = relay
        task = asyncio.create_task(relay.run(), name=f"{source}-outbox-relay") if enabled else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await relay.aclose()

    return hook


EventHandler = Callable[[AsyncSession, EventEnvelope], Awaitable[None]]


def inbox_router(model: Any, handlers: Mapping[str, EventHandler]) -> APIRouter:
    """``POST /events`` (mount under /internal): record once, handle in the same transaction."""
    router = APIRouter(route_class=UnitOfWorkRoute)

    @router.post(
        "/events",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=EventReceipt,
        dependencies=[Depends(require_service)],
    )
    async def receive_event(envelope: EventEnvelope, session: AsyncSession = Depends(get_session)) -> EventReceipt:
        """Receive an event from another service's outbox (at-least-once delivery; duplicates ignored)."""
        insert = insert_for(session)
        now = utcnow()
        result = cast(
            "CursorResult[Any]",
            await session.execute(
                insert(model)
                .values(
                    id=envelope.id,
                    type=envelope.type,
                    source=envelope.source,
                    payload=envelope.payload,
                    received_at=now,
                    processed_at=None,
                )
                .on_conflict_do_nothing(index_elements=["id"])
            ),
        )
        if result.rowcount != 1:
            return EventReceipt(status="duplicate")
        handler = handlers.get(envelope.type)
        if handler is not None:
            await handler(session, envelope)
        await session.execute(update(model).where(model.id == envelope.id).values(processed_at=utcnow()))
        log.info("event.received", event_id=str(envelope.id), type=envelope.type, handled=handler is not None)
        return EventReceipt(status="accepted")

    return router
