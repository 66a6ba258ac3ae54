"""A batch's report (CSV or JSON, streamed page by page) and its progress feed (Server-Sent Events)."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette import ServerSentEvent

from services.refunds.batches import schemas
from services.refunds.batches.repository import RefundBatchRepository
from services.refunds.batches.service import refund_batch_service
from services.refunds.config import Settings
from services.refunds.models import AuditAction, BatchStatus, RefundBatch, RefundItem
from shared.auth import Principal
from shared.db import Database

log = structlog.get_logger("refunds.reports")

REPORT_FIELDS = list(schemas.ReportLine.model_fields)
FINAL_BATCH_STATUSES = (BatchStatus.COMPLETED, BatchStatus.CANCELED)


def report_line(item: RefundItem) -> dict[str, Any]:
    return schemas.ReportLine(
        item_id=item.id,
        pledge_id=item.pledge_id,
        backer_id=item.backer_id,
        action=item.action,
        currency=item.currency,
        amount=item.amount,
        status=item.status,
        stripe_refund_id=item.stripe_refund_id,
        stripe_status=item.stripe_status,
        failure_code=item.failure_code,
        failure_reason=item.failure_reason,
        follow_up_required=item.follow_up_required,
        follow_up_reason=item.follow_up_reason,
        attempts=item.attempts,
        created_at=item.created_at,
        first_attempted_at=item.first_attempted_at,
        finished_at=item.finished_at,
        updated_at=item.updated_at,
    ).model_dump(mode="json")


class ReportService:
    async def record_download(self, session: AsyncSession, principal: Principal, batch_id: uuid.UUID, fmt: str) -> None:
        """Reports carry backer data: every download is audited (the caller commits it before the first byte
        leaves)."""
        await refund_batch_service.audit(session, batch_id, AuditAction.REPORT_DOWNLOADED, principal, {"format": fmt})

    async def csv_chunks(self, db: Database, batch_id: uuid.UUID) -> AsyncIterator[bytes]:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=REPORT_FIELDS, lineterminator="\r\n")
        writer.writeheader()
        async with db.read_sessions() as session:
            async for page in RefundBatchRepository(session).stream_items(batch_id):
                for item in page:
                    line = report_line(item)
                    writer.writerow({k: "" if v is None else v for k, v in line.items()})
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue().encode()

    async def json_chunks(self, db: Database, batch: schemas.RefundBatch) -> AsyncIterator[bytes]:
        yield b'{"batch":' + orjson.dumps(batch.model_dump(mode="json")) + b',"items":['
        first = True
        async with db.read_sessions() as session:
            async for page in RefundBatchRepository(session).stream_items(batch.id):
                chunk = b",".join(orjson.dumps(report_line(item)) for item in page)
                yield chunk if first else b"," + chunk
                first = False
        yield b"]}"

    async def progress_events(
        self, db: Database, batch_id: uuid.UUID, settings: Settings
    ) -> AsyncIterator[ServerSentEvent]:
        """A `progress` event whenever the figures change, then `end` once the batch is completed or canceled
        and nothing is left to send."""
        last: bytes | None = None
        sequence = 0
        while True:
            async with db.read_sessions() as session:
                batch = await session.get(RefundBatch, batch_id)
                if batch is None:  # pragma: no cover - batches are never deleted
                    return
                progress = await refund_batch_service.progress(session, batch, settings)
            payload = orjson.dumps(
                {"batch_id": str(batch_id), "status": batch.status.value, "progress": progress.model_dump(mode="json")}
            )
            finished = batch.status in FINAL_BATCH_STATUSES and progress.queued_items == 0
            if payload != last:
                sequence += 1
                last = payload
                yield ServerSentEvent(data=payload.decode(), event="progress", id=str(sequence))
            if finished:
                yield ServerSentEvent(data=payload.decode(), event="end", id=str(sequence + 1))
                return
            await asyncio.sleep(settings.sse_poll_seconds)


report_service = ReportService()
