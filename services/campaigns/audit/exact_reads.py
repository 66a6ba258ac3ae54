"""The audited read of exact figures, as the read routes use it: its own short write transaction.

GET routes run in a read-only unit of work, yet an operator shown exact figures must leave a record, and
the record must be committed before the figures leave: no record, no figures. So the route calls this after
building its body and before returning it; a failed commit is an error response, never figures unrecorded.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.campaigns.access import Viewer
from services.campaigns.audit.service import audit_service
from services.campaigns.models import Campaign
from shared.db import Database


async def record_exact_reads(db: Database, viewer: Viewer, campaigns: Sequence[Campaign], *, route: str) -> None:
    if not audit_service.needs_exact_reads_record(viewer, campaigns):
        return  # the common case (anonymous, backers, creators): no write transaction at all
    async with db.write_sessions() as session:
        await audit_service.record_exact_reads(session, viewer, campaigns, route=route)
        await session.commit()
