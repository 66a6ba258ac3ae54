"""``crowdfund refunds``: refund batches (preview, approval, running, live progress, report) and single refunds."""

from __future__ import annotations

import os
import sys
import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from crowdfund_cli import watch as watching
from crowdfund_cli.api import ApiError, Unreachable
from crowdfund_cli.context import state
from crowdfund_cli.output import err, fields, out, table
from crowdfund_cli.watch import amounts
from shared.money import format_amount

refunds = typer.Typer(
    help="Refund backers in batches: preview, approve, start, watch, report (operators).", no_args_is_help=True
)
single = typer.Typer(help="Refund one pledge (operators, or a creator on their own campaign).", no_args_is_help=True)
refunds.add_typer(single, name="single")

BATCHES = "/v1/refund-batches"
EXCLUSIONS_SHOWN = 50


class StripeReason(StrEnum):
    requested_by_customer = "requested_by_customer"
    duplicate = "duplicate"
    fraudulent = "fraudulent"


class ReportFormat(StrEnum):
    csv = "csv"
    json = "json"


Note = Annotated[str | None, typer.Option(help="Recorded in the batch's audit log")]
IdempotencyKey = Annotated[
    str | None, typer.Option(help="Reuse the key of an attempt whose answer you did not get, to retry safely")
]


def _selection_text(selection: dict[str, Any]) -> str:
    kind = selection.get("type")
    if kind == "pledges":
        return f"{len(selection.get('pledge_ids', []))} listed pledge(s)"
    if kind == "filter":
        criteria = {
            "tier": selection.get("tier_id"),
            "status": selection.get("status"),
            "created from": selection.get("created_from"),
            "created before": selection.get("created_to"),
        }
        return ", ".join(f"{k} {v}" for k, v in criteria.items() if v)
    return "every pledge of the campaign"


def _rule_text(rule: dict[str, Any]) -> str:
    kind = rule.get("type")
    if kind == "percent":
        return f"{rule['percent']}% of what remains refundable"
    if kind == "fixed":
        return f"{format_amount(rule['amount'], rule['currency'])} each (at most what remains refundable)"
    if kind == "above":
        return f"the part above {format_amount(rule['threshold_amount'], rule['currency'])}"
    return "everything still refundable"


def _render_batch(batch: dict[str, Any]) -> None:
    excluded = sum(batch.get("exclusion_counts", {}).values())
    fields(
        f"Refund batch ({batch['status']})",
        [
            ("id", batch["id"]),
            ("campaign", batch["campaign_id"]),
            ("status", batch["status"]),
            ("reason", batch["reason"]),
            ("selection", _selection_text(batch["selection"])),
            ("amount rule", _rule_text(batch["amount_rule"])),
            ("pledges", f"{batch['item_count']} ({batch['cancel_count']} never charged: canceled instead)"),
            ("total", amounts(batch["totals"])),
            ("excluded", excluded),
            ("approval", "a second operator must approve" if batch["requires_second_approval"] else "any operator"),
            ("created by", f"{batch['created_by']} at {batch['created_at']}"),
            ("approved by", batch.get("approved_by")),
            ("canceled by", batch.get("canceled_by")),
        ],
    )
    if batch["totals"]:
        table(
            "To refund",
            ["currency", "pledges", "amount"],
            [(t["currency"], t["count"], format_amount(t["amount"], t["currency"])) for t in batch["totals"]],
        )
    if excluded:
        table("Excluded", ["reason", "pledges"], sorted(batch["exclusion_counts"].items()))


def _render_progress(batch: dict[str, Any]) -> None:
    progress = batch.get("progress")
    if not progress or batch["status"] in ("preview", "approved"):
        return
    out.print(watching.Figures.of(batch).line(), soft_wrap=True)
    table(
        None,
        ["status", "items", "amount"],
        [(s["status"], s["count"], amounts(s["amounts"])) for s in progress["by_status"] if s["count"]],
    )


def _render_exclusions(page: dict[str, Any], title: str = "Excluded pledges") -> None:
    table(title, ["pledge", "reason", "detail"], [(e["pledge_id"], e["reason"], e["detail"]) for e in page["items"]])


@refunds.command("create")
def refunds_create(
    campaign_id: str,
    reason: Annotated[str, typer.Option(help="Why these backers are refunded (audited)")],
    pledge: Annotated[list[str] | None, typer.Option(help="Only this pledge (repeat the option for several)")] = None,
    tier: Annotated[str | None, typer.Option(help="Only pledges for this tier")] = None,
    status: Annotated[str | None, typer.Option(help="Only pledges in this status, e.g. collected")] = None,
    created_from: Annotated[str | None, typer.Option(help="Only pledges made at or after (ISO 8601)")] = None,
    created_to: Annotated[str | None, typer.Option(help="Only pledges made before (ISO 8601)")] = None,
    percent: Annotated[int | None, typer.Option(min=1, max=100, help="Refund this % of what remains")] = None,
    fixed_amount: Annotated[int | None, typer.Option(min=1, help="Refund this much per pledge (minor units)")] = None,
    above_amount: Annotated[
        int | None, typer.Option(min=0, help="Refund only the part of each charge above this (minor units)")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="Currency of --fixed-amount / --above-amount")] = None,
    stripe_reason: Annotated[StripeReason, typer.Option(help="Recorded on each refund at Stripe")] = (
        StripeReason.requested_by_customer
    ),
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Create a batch as a preview (nothing is refunded yet): which pledges, how much, and who is left out.

    Without selection options every pledge of the campaign is selected; without an amount option each pledge
    is refunded in full."""
    body: dict[str, Any] = {
        "campaign_id": campaign_id,
        "reason": reason,
        "selection": _selection(pledge, tier, status, created_from, created_to),
        "amount_rule": _amount_rule(percent, fixed_amount, above_amount, currency),
        "stripe_reason": stripe_reason.value,
    }
    key = idempotency_key or str(uuid.uuid4())
    batch = _create(BATCHES, body, key)

    def render(data: dict[str, Any]) -> None:
        _render_batch(data)
        if sum(data["exclusion_counts"].values()):
            page = state.api.get(f"{BATCHES}/{data['id']}/exclusions", limit=EXCLUSIONS_SHOWN)
            _render_exclusions(page)
            if page["next_cursor"]:
                out.print(f"More: crowdfund refunds exclusions {data['id']}")
        out.print(f"Idempotency-Key: {key} (pass it as --idempotency-key to retry this exact request)", soft_wrap=True)
        out.print(f"Next: crowdfund refunds approve {data['id']}", soft_wrap=True)

    state.output.emit(batch, render)


def _create(path: str, body: dict[str, Any], key: str) -> Any:
    """A create whose outcome may be unknown (no answer, or the service failed): say how to retry it safely."""
    try:
        return state.api.create(path, body, key)
    except (Unreachable, ApiError) as exc:
        if not state.output.as_json and (isinstance(exc, Unreachable) or exc.status >= 500):
            err.print(f"To retry without refunding twice, pass --idempotency-key {key}", soft_wrap=True)
        raise


def _selection(
    pledges: list[str] | None, tier: str | None, status: str | None, created_from: str | None, created_to: str | None
) -> dict[str, Any]:
    criteria = {"tier_id": tier, "status": status, "created_from": created_from, "created_to": created_to}
    given = {k: v for k, v in criteria.items() if v is not None}
    if pledges and given:
        raise typer.BadParameter("--pledge selects pledges by id: it cannot be combined with filters")
    if pledges:
        return {"type": "pledges", "pledge_ids": pledges}
    if given:
        return {"type": "filter", **given}
    return {"type": "all"}


def _amount_rule(
    percent: int | None, fixed_amount: int | None, above_amount: int | None, currency: str | None
) -> dict[str, Any]:
    chosen = [
        name
        for name, value in (("percent", percent), ("fixed", fixed_amount), ("above", above_amount))
        if value is not None
    ]
    if len(chosen) > 1:
        raise typer.BadParameter("choose one of --percent, --fixed-amount, --above-amount")
    if chosen and chosen[0] in ("fixed", "above") and not currency:
        raise typer.BadParameter("--fixed-amount and --above-amount need --currency")
    if percent is not None:
        return {"type": "percent", "percent": percent}
    if fixed_amount is not None:
        return {"type": "fixed", "amount": fixed_amount, "currency": currency}
    if above_amount is not None:
        return {"type": "above", "threshold_amount": above_amount, "currency": currency}
    return {"type": "full"}


@refunds.command("list")
def refunds_list(
    campaign: Annotated[str | None, typer.Option(help="Only this campaign's batches")] = None,
    status: Annotated[str | None, typer.Option(help="preview, approved, running, paused, completed, canceled")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    cursor: Annotated[str | None, typer.Option(help="From a previous page's next_cursor")] = None,
) -> None:
    """List refund batches, newest first."""
    page = state.api.get(BATCHES, campaign_id=campaign, status=status, limit=limit, cursor=cursor)

    def render(p: dict[str, Any]) -> None:
        table(
            "Refund batches",
            ["id", "campaign", "status", "pledges", "total", "created"],
            [
                (b["id"], b["campaign_id"], b["status"], b["item_count"], amounts(b["totals"]), b["created_at"])
                for b in p["items"]
            ],
        )
        if p["next_cursor"]:
            out.print(f"More: --cursor {p['next_cursor']}", soft_wrap=True)

    state.output.emit(page, render)


@refunds.command("show")
def refunds_show(batch_id: str) -> None:
    """Show a batch: its preview figures and, once started, its progress."""
    batch = state.api.get(f"{BATCHES}/{batch_id}")

    def render(data: dict[str, Any]) -> None:
        _render_batch(data)
        _render_progress(data)

    state.output.emit(batch, render)


@refunds.command("exclusions")
def refunds_exclusions(
    batch_id: str,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    cursor: Annotated[str | None, typer.Option(help="From a previous page's next_cursor")] = None,
) -> None:
    """The pledges the selection matched but the batch leaves out, with the reason."""
    page = state.api.get(f"{BATCHES}/{batch_id}/exclusions", limit=limit, cursor=cursor)
    state.output.emit(page, _render_exclusions)


@refunds.command("audit")
def refunds_audit(batch_id: str, limit: Annotated[int, typer.Option(min=1, max=500)] = 100) -> None:
    """The batch's audit log, oldest first: who created, approved, started, paused, canceled it, and when."""
    entries = state.api.get(f"{BATCHES}/{batch_id}/audit-log", limit=limit)
    state.output.emit(
        entries,
        lambda rows: table(
            "Audit log",
            ["when", "action", "by", "details"],
            [(e["created_at"], e["action"], f"{e['actor_id']} ({e['actor_role']})", e["details"] or "") for e in rows],
        ),
    )


def _act(batch_id: str, action: str, note: str | None, done: str) -> None:
    batch = state.api.post(f"{BATCHES}/{batch_id}/{action}", {"note": note} if note else None)
    state.output.emit(batch, lambda b: out.print(f"{done}: refund batch {b['id']} is now [bold]{b['status']}[/]"))


@refunds.command("approve")
def refunds_approve(batch_id: str, note: Note = None) -> None:
    """Approve a previewed batch (above the threshold, by another operator than its creator)."""
    _act(batch_id, "approve", note, "Approved")


@refunds.command("start")
def refunds_start(batch_id: str, note: Note = None) -> None:
    """Start an approved batch: refunds are sent under the shared Stripe rate limit."""
    _act(batch_id, "start", note, "Started")


@refunds.command("pause")
def refunds_pause(batch_id: str, note: Note = None) -> None:
    """Pause a running batch (refunds in flight finish and are recorded)."""
    _act(batch_id, "pause", note, "Paused")


@refunds.command("resume")
def refunds_resume(batch_id: str, note: Note = None) -> None:
    """Resume a paused batch where it stopped."""
    _act(batch_id, "resume", note, "Resumed")


@refunds.command("cancel")
def refunds_cancel(batch_id: str, note: Note = None) -> None:
    """Cancel a batch that has not finished: refunds already sent stand, the others are never sent."""
    _act(batch_id, "cancel", note, "Canceled")


@refunds.command("watch")
def refunds_watch(batch_id: str) -> None:
    """Follow a batch live until it ends, then summarise it.

    A progress bar on a terminal, one line per change in a pipe, one JSON object per event with --json.
    Exit code 0 when every item went through, 7 when some failed (or need follow-up), 8 when the batch was
    canceled."""
    if state.output.as_json:
        view: watching.View = watching.JsonLines()
    elif out.is_terminal:
        view = watching.LiveBar()
    else:
        view = watching.PlainLines()

    def reconnecting(reason: str, attempt: int) -> None:
        # A quiet stream is cut now and then by a proxy on the way; a first reconnection is routine.
        if attempt > 1:
            err.print(f"[yellow]Progress stream lost ({reason}); reconnecting (attempt {attempt})[/]")

    final: dict[str, Any] | None = None
    with view:
        for event, event_id, data in watching.follow(state.api, batch_id, on_reconnect=reconnecting):
            view.show(event, event_id, data)
            if event == "end":
                final = data
    assert final is not None  # follow() returns only after the `end` event
    if not state.output.as_json:
        watching.summary(batch_id, final)
    raise typer.Exit(watching.exit_code(final))


@refunds.command("report")
def refunds_report(
    batch_id: str,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="csv or json")] = ReportFormat.csv,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout)")] = None,
) -> None:
    """Download a batch's report: every item with its pledge, backer, amount, Stripe refund and outcome."""
    path, params = f"{BATCHES}/{batch_id}/report", {"format": fmt.value}
    if output is None:
        state.api.download(path, sys.stdout.buffer, params=params)
        sys.stdout.buffer.flush()
        return
    partial = output.with_name(output.name + ".part")  # never leave half a report under the real name
    try:
        with partial.open("wb") as sink:
            written = state.api.download(path, sink, params=params)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    saved = {"path": str(output), "format": fmt.value, "bytes": written}
    state.output.emit(saved, lambda s: out.print(f"Saved the {s['format']} report to {s['path']} ({s['bytes']} bytes)"))


@single.command("create")
def single_create(
    pledge_id: str,
    reason: Annotated[str, typer.Option(help="Why this backer is refunded (audited)")],
    amount: Annotated[int | None, typer.Option(min=1, help="Minor units (default: everything refundable)")] = None,
    stripe_reason: Annotated[StripeReason, typer.Option(help="Recorded on the refund at Stripe")] = (
        StripeReason.requested_by_customer
    ),
    idempotency_key: IdempotencyKey = None,
) -> None:
    """Refund one pledge. Below the approval threshold it starts at once; above it, an operator approves its
    batch (`crowdfund refunds approve BATCH_ID`)."""
    body = {"pledge_id": pledge_id, "reason": reason, "amount": amount, "stripe_reason": stripe_reason.value}
    key = idempotency_key or str(uuid.uuid4())
    refund = _create("/v1/refunds", {k: v for k, v in body.items() if v is not None}, key)
    state.output.emit(refund, _render_single)


@single.command("show")
def single_show(refund_id: str) -> None:
    """A single refund's state."""
    state.output.emit(state.api.get(f"/v1/refunds/{refund_id}"), _render_single)


def _render_single(refund: dict[str, Any]) -> None:
    fields(
        f"Refund ({refund['status']})",
        [
            ("id", refund["id"]),
            ("pledge", refund["pledge_id"]),
            ("action", refund["action"]),
            ("amount", format_amount(refund["amount"], refund["currency"])),
            ("status", refund["status"]),
            ("batch", f"{refund['batch_id']} ({refund['batch_status']})"),
            ("needs approval", "yes" if refund["requires_approval"] else "no"),
            ("Stripe refund", refund.get("stripe_refund_id")),
            ("failure", refund.get("failure_reason")),
        ],
    )
