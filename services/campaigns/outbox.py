"""Stand-in for ``shared.outbox`` until the lead's module lands: the same ``publish`` signature and an
``OutboxEventMixin`` with the columns the relay needs, so switching is a one-line import change.

An event is a row written in the caller's transaction: it exists exactly when the change it describes was
committed. Delivery (at least once, by a relay) is not this module's business.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.db import utcnow


class OutboxEventMixin:
    @declared_attr.directive
    def __tablename__(cls) -> str:
        return "outbox_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    event_type: Mapped[str] = mapped_column(String(100), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)


async def publish(session: AsyncSession, model: Any, event_type: str, payload: dict[str, Any]) -> Any:
    event = model(id=uuid.uuid4(), event_type=event_type, payload=payload, created_at=utcnow(), attempts=0)
    session.add(event)
    await session.flush()
    return event
