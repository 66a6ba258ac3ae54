from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.app import create_service_app
from shared.auth import ServiceTokenSource
from shared.db import Database, utcnow
from shared.outbox import EventEnvelope, OutboxRelay, Subscriber, inbox_router, publish
from shared.settings import DEV_SERVICE_SECRET, ServiceSettings
from shared.testing import app_client
from shared.tests.conftest import InboxEvent, OutboxEvent


class Consumer:
    """A real consumer app (inbox + handler), reached over an in-process HTTP transport."""

    def __init__(self, database_url: str) -> None:
        self.handled: list[str] = []
        self.posts = 0

        async def on_widget_created(_session: AsyncSession, envelope: EventEnvelope) -> None:
            self.handled.append(envelope.payload["n"])

        self.app = create_service_app(
            name="consumer",
            title="consumer",
            description="",
            settings=ServiceSettings(database_url=database_url, environment="test"),
            routers=[],
            internal_routers=[inbox_router(InboxEvent, {"widget.created": on_widget_created})],
        )

        @self.app.middleware("http")
        async def count_posts(request, call_next):  # type: ignore[no-untyped-def]
            self.posts += 1
            return await call_next(request)


@pytest.fixture
async def database(shared_database_url: str) -> AsyncIterator[Database]:
    db = Database(shared_database_url)
    yield db
    await db.dispose()


@pytest.fixture
async def consumer(shared_database_url: str) -> AsyncIterator[Consumer]:
    consumer = Consumer(shared_database_url)
    async with app_client(consumer.app):
        yield consumer


def _relay(database: Database, consumer: Consumer, **kwargs: object) -> OutboxRelay:
    return OutboxRelay(
        source="widgets",
        db=database,
        model=OutboxEvent,
        subscribers=[Subscriber("consumer", "http://consumer/internal/events", frozenset({"widget.created"}))],
        token_source=ServiceTokenSource(DEV_SERVICE_SECRET, "widgets"),
        transport=httpx.ASGITransport(app=consumer.app),
        **kwargs,  # type: ignore[arg-type]
    )


async def _publish(database: Database, n: int) -> None:
    async with database.write_sessions() as session:
        for i in range(n):
            await publish(session, OutboxEvent, "widget.created", {"n": str(i)})
        await session.commit()


async def test_an_event_is_delivered_and_handled_once_even_if_redelivered(
    database: Database, consumer: Consumer
) -> None:
    await _publish(database, 1)
    relay = _relay(database, consumer)
    assert await relay.relay_once() == 1
    assert consumer.handled == ["0"]
    # Simulate a relay that died after the POST but before recording it: the event goes out again.
    async with database.write_sessions() as session:
        await session.execute(update(OutboxEvent).values(delivered_at=None, delivered_to=[]))
        await session.commit()
    assert await relay.relay_once() == 1
    assert consumer.handled == ["0"]
    assert consumer.posts == 2
    await relay.aclose()


async def test_a_failed_delivery_is_retried_later_with_backoff(database: Database, consumer: Consumer) -> None:
    await _publish(database, 1)
    relay = OutboxRelay(
        source="widgets",
        db=database,
        model=OutboxEvent,
        subscribers=[Subscriber("consumer", "http://127.0.0.1:9/internal/events", frozenset({"*"}))],
        token_source=ServiceTokenSource(DEV_SERVICE_SECRET, "widgets"),
        timeout_seconds=0.5,
    )
    assert await relay.relay_once() == 1
    async with database.read_sessions() as session:
        event = (await session.execute(select(OutboxEvent))).scalar_one()
    assert event.delivered_at is None
    assert event.attempts == 1
    assert event.available_at > utcnow()
    assert "consumer" in (event.last_error or "")
    assert await relay.relay_once() == 0  # not due yet
    await relay.aclose()


async def test_two_relays_share_the_work_without_double_delivery(database: Database, consumer: Consumer) -> None:
    await _publish(database, 40)
    relays = [_relay(database, consumer, batch_size=5) for _ in range(2)]

    async def drain(relay: OutboxRelay) -> None:
        while await relay.relay_once():
            pass

    await asyncio.gather(*(drain(r) for r in relays))
    assert sorted(consumer.handled, key=int) == [str(i) for i in range(40)]
    assert consumer.posts == 40
    async with database.read_sessions() as session:
        pending = await session.execute(select(func.count()).where(OutboxEvent.delivered_at.is_(None)))
        assert pending.scalar_one() == 0
    for relay in relays:
        await relay.aclose()


async def test_the_inbox_refuses_callers_without_a_service_token(consumer: Consumer) -> None:
    from shared.testing import auth_headers

    transport = httpx.ASGITransport(app=consumer.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://consumer") as client:
        envelope = {
            "id": "8d4f0e6e-8d9a-4a0e-9d7e-1f0f6a9b0c11",
            "type": "widget.created",
            "source": "x",
            "occurred_at": "2026-01-01T00:00:00Z",
            "payload": {"n": "9"},
        }
        anonymous = await client.post("/internal/events", json=envelope)
        operator = await client.post("/internal/events", json=envelope, headers=auth_headers("oscar", "operator"))
    assert anonymous.status_code == 401
    assert operator.status_code == 403
    assert consumer.handled == []
