from __future__ import annotations

import csv
import io
import json
import uuid

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.tests.fakes import FakePledges
from services.refunds.tests.support import create_and_start_batch, seed_charged_pledges
from shared.testing import app_client, auth_headers
from stripe_local.testing import StripeLocalProcess

OPERATOR = auth_headers("operator-1", "operator")


def parse_sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_progress_stream_ends_when_the_batch_completes_and_the_report_has_every_item(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    pledges = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [800 + i for i in range(60)])
    app = create_app(settings.model_copy(update={"worker_enabled": True, "sse_poll_seconds": 0.1}))
    async with app_client(app) as client:
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        stream = await client.get(f"/v1/refund-batches/{batch_id}/events", headers=OPERATOR, timeout=60)
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(stream.text)
        assert events[-1][0] == "end"
        assert events[-1][1]["status"] == "completed"
        assert events[-1][1]["progress"]["done_items"] == 60
        assert all(name == "progress" for name, _ in events[:-1])
        done = [body["progress"]["done_items"] for _, body in events]
        assert done == sorted(done)  # progress only moves forward

        csv_report = await client.get(
            f"/v1/refund-batches/{batch_id}/report", headers=OPERATOR | {"Accept": "text/csv"}
        )
        assert csv_report.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(csv_report.text)))
        assert {row["pledge_id"] for row in rows} == {str(p.pledge_id) for p in pledges}
        assert all(row["status"] == "succeeded" and row["stripe_refund_id"].startswith("re_") for row in rows)
        assert {int(row["amount"]) for row in rows} == {p.charged_amount for p in pledges}

        json_report = (await client.get(f"/v1/refund-batches/{batch_id}/report?format=json", headers=OPERATOR)).json()
        assert json_report["batch"]["status"] == "completed"
        assert len(json_report["items"]) == 60
        log = (await client.get(f"/v1/refund-batches/{batch_id}/audit-log", headers=OPERATOR)).json()
        assert [e["action"] for e in log][-3:] == ["completed", "report_downloaded", "report_downloaded"]
        assert log[-3]["actor_id"] == "system"
