"""The pledges service's tables (its own database)."""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy.orm import DeclarativeBase

from shared.db import TYPE_ANNOTATION_MAP, new_metadata
from shared.idempotency import IdempotencyRecordMixin
from shared.outbox import InboxEventMixin, OutboxEventMixin


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map: ClassVar[dict[Any, Any]] = TYPE_ANNOTATION_MAP


class IdempotencyRecord(IdempotencyRecordMixin, Base):
    pass


class OutboxEvent(OutboxEventMixin, Base):
    pass


class InboxEvent(InboxEventMixin, Base):
    pass
