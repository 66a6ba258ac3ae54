"""Opaque cursors for (created_at, id) keyset pagination."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from shared.errors import BadRequest


def encode_cursor(created_at: datetime, pledge_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{pledge_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, pledge_id = raw.partition("|")
        parsed = datetime.fromisoformat(created)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        return parsed, uuid.UUID(pledge_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("The cursor is not one this API issued.", code="invalid_cursor") from exc
