"""``crowdfund refunds watch``: a batch's progress stream (``GET /v1/refund-batches/{id}/events``), shown as a live
bar on a terminal, as plain lines in a pipe, or as one JSON object per event with ``--json``.

Every ``progress`` event carries the batch's whole figures (a snapshot, not a delta), and a new connection starts
with the current ones: after a dropped stream we reconnect and lose nothing. We still send ``Last-Event-ID``
as any EventSource does, although the server restarts its numbering on each connection and does not need it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn

from crowdfund_cli.api import ApiError, Unreachable
from crowdfund_cli.context import EXIT_BATCH_CANCELED, EXIT_BATCH_FAILED_ITEMS
from crowdfund_cli.output import fields, out, table
from crowdfund_cli.sse import ServerSentEvent
from shared.money import format_amount

RETRYABLE_STATUSES = (429, 502, 503, 504)
MAX_RECONNECTS = 8
MAX_BACKOFF_SECONDS = 15.0


class EventSource(Protocol):
    def events(self, path: str, last_event_id: str | None = None) -> Iterator[ServerSentEvent]: ...


def amounts(totals: list[dict[str, Any]]) -> str:
    return ", ".join(format_amount(t["amount"], t["currency"]) for t in totals) or "-"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


@dataclass(frozen=True)
class Figures:
    """What a progress event says, in the terms the user reads."""

    status: str
    total: int
    done: int
    failed: int
    follow_up: int
    refunded: str
    rate: float
    eta: str

    @classmethod
    def of(cls, data: dict[str, Any]) -> Figures:
        progress = data["progress"]
        failed = sum(s["count"] for s in progress["by_status"] if s["status"] == "failed")
        return cls(
            status=data["status"],
            total=progress["total_items"],
            done=progress["done_items"],
            failed=failed,
            follow_up=progress["follow_up_items"],
            refunded=amounts(progress["refunded_amounts"]),
            rate=progress["rate_per_second"],
            eta=duration(progress["eta_seconds"]),
        )

    def line(self) -> str:
        percent = 100 * self.done / self.total if self.total else 100.0
        return (
            f"{self.status}: {self.done}/{self.total} done ({percent:.0f}%), {self.failed} failed, "
            f"refunded {self.refunded}, {self.rate:.1f}/s, ETA {self.eta}"
        )


def exit_code(data: dict[str, Any]) -> int:
    """0 when every item went through; 8 canceled; 7 completed with failed items or items needing follow-up."""
    if data["status"] == "canceled":
        return EXIT_BATCH_CANCELED
    figures = Figures.of(data)
    return EXIT_BATCH_FAILED_ITEMS if figures.failed or figures.follow_up else 0


def follow(
    api: EventSource,
    batch_id: str,
    *,
    on_reconnect: Callable[[str, int], None] = lambda _reason, _attempt: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """(event name, event id, figures) for each ``progress`` event and the final ``end``; reconnects with
    backoff when a stream that was working drops or ends early (a proxy timeout, a service restart)."""
    path = f"/v1/refund-batches/{batch_id}/events"
    last_id: str | None = None
    backoff = 1.0
    connected = False
    failures = 0
    while True:
        try:
            for event in api.events(path, last_id):
                connected, failures = True, 0
                last_id = event.id or last_id
                if event.retry_ms is not None:
                    backoff = event.retry_ms / 1000
                if event.event in ("progress", "end"):
                    yield event.event, event.id, json.loads(event.data)
                    if event.event == "end":
                        return
            reason = "the stream ended before the batch did"
        except httpx.TransportError as exc:
            if not connected:  # never got through: the gateway is not there, say so at once
                raise Unreachable(f"cannot reach the gateway: {type(exc).__name__}") from exc
            reason = type(exc).__name__
        except ApiError as exc:
            if exc.status not in RETRYABLE_STATUSES or not connected:
                raise
            reason = f"HTTP {exc.status}"
        failures += 1
        if failures > MAX_RECONNECTS:
            raise Unreachable(f"lost the progress stream {failures} times in a row ({reason})")
        on_reconnect(reason, failures)
        sleep(min(backoff * 2 ** (failures - 1), MAX_BACKOFF_SECONDS))


def summary(batch_id: str, data: dict[str, Any]) -> None:
    progress = data["progress"]
    figures = Figures.of(data)
    out.print(f"[bold]Refund batch {batch_id}: {data['status']}[/]", soft_wrap=True)
    fields(
        None,
        [
            ("items", f"{figures.done}/{figures.total} done"),
            ("refunded", figures.refunded),
            ("failed", figures.failed),
            ("follow-up needed", figures.follow_up),
        ],
    )
    table(
        None,
        ["status", "items", "amount"],
        [(s["status"], s["count"], amounts(s["amounts"])) for s in progress["by_status"] if s["count"]],
    )


class View:
    def __enter__(self) -> View:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def show(self, event: str, event_id: str | None, data: dict[str, Any]) -> None:
        raise NotImplementedError


class JsonLines(View):
    """``--json``: one object per event (its name and id, and the server's figures as sent)."""

    def show(self, event: str, event_id: str | None, data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"event": event, "id": event_id, **data}, sort_keys=True) + "\n")
        sys.stdout.flush()


class PlainLines(View):
    """Not a terminal: a line each time the counts move (not for a new rate alone), nothing drawn over."""

    def __init__(self) -> None:
        self._last: tuple[Any, ...] = ()

    def show(self, event: str, event_id: str | None, data: dict[str, Any]) -> None:
        figures = Figures.of(data)
        counts = (figures.status, figures.done, figures.failed, figures.follow_up, figures.refunded)
        if counts != self._last:
            sys.stdout.write(figures.line() + "\n")
            sys.stdout.flush()
            self._last = counts


class LiveBar(View):
    """A terminal: one bar redrawn in place."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.fields[status]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[refunded]}"),
            TextColumn("{task.fields[rate]:.1f}/s"),
            TextColumn("ETA {task.fields[eta]}"),
            console=out,
        )
        self.task = self.progress.add_task(
            "refunds", total=None, status="connecting", failed=0, refunded="-", rate=0.0, eta="?"
        )

    def __enter__(self) -> LiveBar:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()

    def show(self, event: str, event_id: str | None, data: dict[str, Any]) -> None:
        f = Figures.of(data)
        self.progress.update(
            self.task,
            total=f.total,
            completed=f.done,
            status=f.status,
            failed=f.failed,
            refunded=f.refunded,
            rate=f.rate,
            eta=f.eta,
        )
