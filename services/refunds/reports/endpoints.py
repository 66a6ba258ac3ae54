"""A batch's report (CSV or JSON) and its live progress feed (Server-Sent Events)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette import EventSourceResponse

from services.refunds.batches import schemas
from services.refunds.batches.service import refund_batch_service
from services.refunds.config import Settings
from services.refunds.dependencies import get_database, get_settings, require_reader
from services.refunds.reports.service import report_service
from shared.auth import Principal
from shared.db import Database
from shared.errors import problem_responses
from shared.unit_of_work import UnitOfWorkRoute, get_session

router = APIRouter(prefix="/v1/refund-batches", tags=["refund batches"], route_class=UnitOfWorkRoute)

REPORT_CONTENT = {
    "application/json": {"schema": {"$ref": "#/components/schemas/RefundBatchReport"}},
    "text/csv": {"schema": {"type": "string"}, "example": "item_id,pledge_id,backer_id,action,currency,amount,..."},
}
REPORT_ANSWERED: dict[int | str, dict[str, Any]] = {200: {"content": REPORT_CONTENT, "description": "The report."}}
PROGRESS_STREAMED: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}, "description": "SSE."}
}


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept.split("text/csv")[0]


@router.get(
    "/{batch_id}/report",
    response_model=schemas.RefundBatchReport,
    responses=REPORT_ANSWERED | problem_responses(401, 403, 404, 422),
)
async def get_refund_batch_report(
    batch_id: uuid.UUID,
    request: Request,
    fmt: Literal["csv", "json"] | None = Query(
        default=None, alias="format", description="`csv` or `json`; otherwise chosen by the `Accept` header."
    ),
    principal: Principal = Depends(require_reader),
    session: AsyncSession = Depends(get_session),
    db: Database = Depends(get_database),
    settings: Settings = Depends(get_settings),
) -> StreamingResponse:
    """The batch's report: for every item, the pledge, backer, amount, Stripe refund id, status, failure
    reason, follow-up flag and timestamps. CSV (`text/csv`) or JSON, by `Accept` or `?format=`. Never public:
    operators, and the creator of a single refund for their own. Every download is audited."""
    batch = await refund_batch_service.get(session, principal, batch_id)
    csv_wanted = _wants_csv(request, fmt)
    # The request's session is a read session (GET): the audit row gets its own short write transaction,
    # committed before the first byte of the report leaves.
    async with db.write_sessions() as audit_session:
        await report_service.record_download(audit_session, principal, batch.id, "csv" if csv_wanted else "json")
        await audit_session.commit()
    if csv_wanted:
        return StreamingResponse(
            report_service.csv_chunks(db, batch.id),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="refund-batch-{batch.id}.csv"'},
        )
    view = await refund_batch_service.present(session, batch, settings)
    return StreamingResponse(report_service.json_chunks(db, view), media_type="application/json")


@router.get(
    "/{batch_id}/events",
    response_class=EventSourceResponse,
    responses=PROGRESS_STREAMED | problem_responses(401, 403, 404),
)
async def stream_refund_batch_progress(
    batch_id: uuid.UUID,
    principal: Principal = Depends(require_reader),
    session: AsyncSession = Depends(get_session),
    db: Database = Depends(get_database),
    settings: Settings = Depends(get_settings),
) -> EventSourceResponse:
    """A live progress feed for dashboards and the command line (Server-Sent Events): a `progress` event
    (`{batch_id, status, progress}`, the same figures as `GET /v1/refund-batches/{batch_id}`) each time they
    change, and a final `end` event once the batch is completed or canceled."""
    batch = await refund_batch_service.get(session, principal, batch_id)
    return EventSourceResponse(report_service.progress_events(db, batch.id, settings), ping=15)
