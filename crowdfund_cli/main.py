"""The ``crowdfund`` command.

Exit codes scripts can rely on: 0 success, 1 unexpected error, 2 usage error, 3 not authenticated or not
allowed (401/403), 4 not found (404), 5 refused by the API (400/402/409/412/422), 6 unavailable, try again
later (429, 5xx, gateway unreachable). `refunds watch` also ends with 7 when the batch completed with failed
items (or items flagged for follow-up) and 8 when the batch was canceled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from crowdfund_cli import config as config_module
from crowdfund_cli.api import Api, ApiError, Unreachable
from crowdfund_cli.context import EXIT_UNAVAILABLE, exit_code_for, state
from crowdfund_cli.output import Output, err, fields, out, problem, table
from crowdfund_cli.refunds import refunds
from shared.money import format_amount

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
campaigns = typer.Typer(help="Create and manage campaigns (creators).", no_args_is_help=True)
review = typer.Typer(help="Review submitted campaigns (operators).", no_args_is_help=True)
app.add_typer(campaigns, name="campaigns")
app.add_typer(review, name="review")
app.add_typer(refunds, name="refunds")


@app.callback()
def main_options(
    gateway: Annotated[str | None, typer.Option(help="Gateway URL [env CROWDFUND_GATEWAY_URL]")] = None,
    token: Annotated[str | None, typer.Option(help="Bearer token [env CROWDFUND_TOKEN]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON output")] = False,
) -> None:
    state.api = Api(config_module.load(gateway, token))
    state.output = Output(as_json)


@app.command()
def configure(
    gateway: Annotated[str, typer.Option(help="Gateway URL")] = config_module.DEFAULT_GATEWAY,
    token: Annotated[str | None, typer.Option(help="Bearer token to store")] = None,
) -> None:
    """Store the gateway address and a token in the config file (readable by you only)."""
    path = config_module.save(gateway.rstrip("/"), token)
    out.print(f"Saved {path}")


def _load_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML too
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} must hold an object")
    return data


def _money(amount: int | None, currency: str) -> str:
    return "-" if amount is None else format_amount(amount, currency)


def _render_campaign(campaign: dict[str, Any]) -> None:
    currency = campaign.get("currency", "USD")
    fields(
        campaign.get("title", "Campaign"),
        [
            ("id", campaign.get("id")),
            ("status", campaign.get("status")),
            ("funding model", campaign.get("funding_model")),
            ("goal", _money(campaign.get("goal_amount"), currency)),
            ("cap", "none (declared)" if campaign.get("uncapped") else _money(campaign.get("cap_amount"), currency)),
            ("deadline", campaign.get("deadline_at")),
            ("creator", campaign.get("creator_id")),
        ],
    )


def _render_vetting(record: dict[str, Any]) -> None:
    fields(
        "Vetting record",
        [
            ("status", record.get("status")),
            ("submitted", record.get("submitted_at")),
            ("reviewed", record.get("reviewed_at")),
            ("round", record.get("review_round")),
        ],
    )
    checks = record.get("checks") or []
    if checks:
        table(
            None, ["check", "result", "by"], [(c.get("item"), c.get("result"), c.get("reviewer_role")) for c in checks]
        )


@campaigns.command("create")
def campaigns_create(
    file: Annotated[Path, typer.Argument(help="YAML or JSON: the campaign, with an optional `tiers` list")],
    idempotency_key: Annotated[str | None, typer.Option(help="Reuse to retry safely")] = None,
) -> None:
    """Create a draft campaign from a file, and its tiers if the file lists them."""
    body = _load_file(file)
    tiers = body.pop("tiers", [])
    campaign = state.api.create("/v1/campaigns", body, idempotency_key)
    created_tiers = [
        state.api.create(
            f"/v1/campaigns/{campaign['id']}/tiers", tier, f"{idempotency_key}:tier:{i}" if idempotency_key else None
        )
        for i, tier in enumerate(tiers)
    ]
    result = {**campaign, "tiers": created_tiers}

    def render(data: dict[str, Any]) -> None:
        _render_campaign(data)
        out.print(f"{len(created_tiers)} tier(s) added.")

    state.output.emit(result, render)


@campaigns.command("add-tier")
def campaigns_add_tier(
    campaign_id: str,
    file: Annotated[Path, typer.Argument(help="YAML or JSON: one tier")],
    idempotency_key: Annotated[str | None, typer.Option(help="Reuse to retry safely")] = None,
) -> None:
    """Add a reward tier to a campaign."""
    tier = state.api.create(f"/v1/campaigns/{campaign_id}/tiers", _load_file(file), idempotency_key)
    state.output.emit(tier, lambda t: fields(t["terms"]["title"], [("id", t["id"]), ("version", t["current_version"])]))


@campaigns.command("show")
def campaigns_show(campaign_id: str) -> None:
    """Show a campaign with its tiers and its public vetting record."""
    campaign = state.api.get(f"/v1/campaigns/{campaign_id}")
    tiers = state.api.get(f"/v1/campaigns/{campaign_id}/tiers")
    record = state.api.get(f"/v1/campaigns/{campaign_id}/vetting-record")
    result = {"campaign": campaign, "tiers": tiers, "vetting_record": record}

    def render(data: dict[str, Any]) -> None:
        _render_campaign(data["campaign"])
        currency = data["campaign"].get("currency", "USD")
        tier_list = data["tiers"]["items"] if isinstance(data["tiers"], dict) else data["tiers"]
        table(
            "Tiers",
            ["id", "title", "price", "version"],
            [
                (t["id"], t["terms"]["title"], _money(t["terms"]["price_amount"], currency), t["current_version"])
                for t in tier_list
            ],
        )
        _render_vetting(data["vetting_record"])

    state.output.emit(result, render)


@campaigns.command("list")
def campaigns_list(
    status: Annotated[str | None, typer.Option(help="Only campaigns in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
) -> None:
    """List campaigns."""
    page = state.api.get("/v1/campaigns", status=status, limit=limit)
    state.output.emit(
        page,
        lambda p: table(
            "Campaigns", ["id", "title", "status"], [(c["id"], c["title"], c["status"]) for c in p["items"]]
        ),
    )


def _transition(path: str, body: dict[str, Any] | None, done: str) -> None:
    change = state.api.post(path, body)
    state.output.emit(
        change,
        lambda c: out.print(
            f"{done}: campaign {c['campaign_id']} went {c['previous_status']} → [bold]{c['status']}[/]"
        ),
    )


@campaigns.command("submit")
def campaigns_submit(campaign_id: str, note: Annotated[str | None, typer.Option()] = None) -> None:
    """Submit a draft for review (refused with the list of what is missing)."""
    _transition(f"/v1/campaigns/{campaign_id}/submit", {"reason": note} if note else None, "Submitted")


@campaigns.command("launch")
def campaigns_launch(campaign_id: str) -> None:
    """Launch an approved campaign: it starts accepting pledges."""
    _transition(f"/v1/campaigns/{campaign_id}/launch", None, "Launched")


@campaigns.command("cancel")
def campaigns_cancel(campaign_id: str, reason: Annotated[str, typer.Option()]) -> None:
    """Cancel a campaign."""
    _transition(f"/v1/campaigns/{campaign_id}/cancel", {"reason": reason}, "Canceled")


@review.command("queue")
def review_queue() -> None:
    """Campaigns waiting for review, oldest first."""
    queue = state.api.get("/v1/campaigns/review-queue")
    items = queue["items"] if isinstance(queue, dict) else queue
    state.output.emit(
        queue,
        lambda _q: table(
            "Review queue",
            ["id", "title", "creator", "status", "submitted", "round"],
            [(i["id"], i["title"], i["creator_id"], i["status"], i["submitted_at"], i["review_round"]) for i in items],
        ),
    )


@review.command("start")
def review_start(campaign_id: str) -> None:
    """Start reviewing a submitted campaign."""
    _transition(f"/v1/campaigns/{campaign_id}/start-review", None, "Review started")


@review.command("check")
def review_check(
    campaign_id: str,
    item: Annotated[str, typer.Argument(help="identity_verified, prototype_evidence, budget_plausible, ...")],
    result: Annotated[str, typer.Option(help="passed or failed")],
    note: Annotated[str | None, typer.Option(help="Private note (not in the public record)")] = None,
) -> None:
    """Record one checklist item."""
    entry = state.api.put(f"/v1/campaigns/{campaign_id}/review-checklist/{item}", {"result": result, "note": note})
    state.output.emit(entry, lambda _e: out.print(f"Recorded {item}: {result}"))


@review.command("approve")
def review_approve(campaign_id: str, note: Annotated[str | None, typer.Option()] = None) -> None:
    """Approve a campaign under review."""
    _transition(f"/v1/campaigns/{campaign_id}/approve", {"reason": note} if note else None, "Approved")


@review.command("request-changes")
def review_request_changes(campaign_id: str, reason: Annotated[str, typer.Option()]) -> None:
    """Send a campaign back to its creator with what to change."""
    _transition(f"/v1/campaigns/{campaign_id}/request-changes", {"reason": reason}, "Changes requested")


@review.command("reject")
def review_reject(campaign_id: str, reason: Annotated[str, typer.Option()]) -> None:
    """Reject a campaign."""
    _transition(f"/v1/campaigns/{campaign_id}/reject", {"reason": reason}, "Rejected")


def main() -> None:
    try:
        app()
    except ApiError as exc:
        problem(exc, state.output.as_json if hasattr(state, "output") else False)
        raise SystemExit(exit_code_for(exc.status)) from None
    except Unreachable as exc:
        err.print(f"[bold red]Error[/]: {exc}")
        raise SystemExit(EXIT_UNAVAILABLE) from None
    finally:
        if hasattr(state, "api"):
            state.api.close()


if __name__ == "__main__":
    main()
