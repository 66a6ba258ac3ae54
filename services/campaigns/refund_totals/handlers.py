"""Events from the pledges service, delivered by its outbox relay to ``POST /internal/events`` and handled in
the same transaction as the inbox insert (a redelivered event id is acknowledged and ignored there).

* ``pledge.refunded`` sets the pledge's refunded total (the latest revision), and moves the campaign's by the difference.
"""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.refund_totals.schemas import PledgeRefunded
from services.campaigns.refund_totals.service import refund_total_service
from shared.errors import UnprocessableContent
from shared.outbox import EventEnvelope

PLEDGE_REFUNDED = "pledge.refunded"


async def on_pledge_refunded(session: AsyncSession, envelope: EventEnvelope) -> None:
    try:
        event = PledgeRefunded.model_validate(envelope.payload)
    except ValidationError as exc:
        # Not acknowledged: the producer keeps the event (and this answer as its last error) until it is fixed.
        raise UnprocessableContent(
            f"pledge.refunded payload does not match the contract: {exc.error_count()} error(s).",
            code="invalid_event_payload",
        ) from exc
    await refund_total_service.record(session, event)
