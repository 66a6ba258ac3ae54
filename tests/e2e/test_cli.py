"""The `crowdfund` command, run as a user runs it (a subprocess), against the real stack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.testing import user_token
from tests.e2e.flows import crowdfund
from tools.stack import Stack

pytestmark = pytest.mark.e2e

CHECKLIST = ("identity_verified", "prototype_evidence", "budget_plausible", "risks_disclosed", "fulfilment_plan")


def _campaign_file(tmp_path: Path) -> Path:
    campaign: dict[str, Any] = {
        "title": "Tiny synthesizer",
        "description": "A pocket synth.",
        "currency": "EUR",
        "goal_amount": 200_000,
        "cap_amount": 900_000,
        "funding_model": "all_or_nothing",
        "deadline_at": (datetime.now(UTC) + timedelta(days=20)).isoformat(),
        "risks_and_challenges": "Chip shortages.",
        "budget": [{"label": "Parts", "cost_amount": 150_000}, {"label": "Shipping", "cost_amount": 50_000}],
        "tiers": [
            {
                "title": "One synth",
                "description": "The synth.",
                "price_amount": 9_900,
                "items": [{"name": "Synth", "quantity": 1}],
                "estimated_delivery": "2027-09",
                "shipping": [{"region": "EU", "shipping_amount": 900}],
            }
        ],
    }
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(campaign))
    return path


def test_a_creator_and_an_operator_take_a_campaign_from_file_to_live(stack: Stack, tmp_path: Path) -> None:
    creator, operator = user_token("cli-carol", "creator"), user_token("cli-oscar", "operator")

    created = crowdfund(stack, creator, "--json", "campaigns", "create", str(_campaign_file(tmp_path)))
    assert created.returncode == 0, created.stderr
    campaign = json.loads(created.stdout)
    campaign_id = campaign["id"]
    assert campaign["status"] == "draft"
    assert len(campaign["tiers"]) == 1

    assert crowdfund(stack, creator, "campaigns", "submit", campaign_id).returncode == 0
    queue = json.loads(crowdfund(stack, operator, "--json", "review", "queue").stdout)
    items = queue["items"] if isinstance(queue, dict) else queue
    assert campaign_id in {i["id"] for i in items}

    assert crowdfund(stack, operator, "review", "start", campaign_id).returncode == 0
    for item in CHECKLIST:
        checked = crowdfund(stack, operator, "review", "check", campaign_id, item, "--result", "passed", "--note", "ok")
        assert checked.returncode == 0, checked.stderr
    assert crowdfund(stack, operator, "review", "approve", campaign_id).returncode == 0
    launched = crowdfund(stack, creator, "campaigns", "launch", campaign_id)
    assert launched.returncode == 0, launched.stderr
    assert "approved → live" in launched.stdout

    shown = crowdfund(stack, creator, "--json", "campaigns", "show", campaign_id)
    detail = json.loads(shown.stdout)
    assert detail["campaign"]["status"] == "live"
    assert detail["vetting_record"]["status"] == "live"
    assert {c["item"] for c in detail["vetting_record"]["checks"]} == set(CHECKLIST)
    assert "ok" not in json.dumps(detail["vetting_record"]["checks"])  # private notes stay private

    table = crowdfund(stack, None, "campaigns", "show", campaign_id)  # anonymous: public page
    assert table.returncode == 0, table.stderr
    assert "Tiny synthesizer" in table.stdout
    assert "One synth" in table.stdout
    assert "99.00 EUR" in table.stdout
    assert "\x1b[" not in table.stdout  # no colour codes when not on a terminal


def test_errors_show_the_problem_detail_and_exit_with_a_stable_code(stack: Stack, tmp_path: Path) -> None:
    creator = user_token("cli-dora", "creator")
    campaign = json.loads(
        crowdfund(stack, creator, "--json", "campaigns", "create", str(_campaign_file(tmp_path))).stdout
    )

    launch_draft = crowdfund(stack, creator, "campaigns", "launch", campaign["id"])
    assert launch_draft.returncode == 5
    assert "409" in launch_draft.stderr

    not_logged_in = crowdfund(stack, None, "review", "queue")
    assert not_logged_in.returncode == 3
    assert "missing_token" in not_logged_in.stderr

    missing = crowdfund(stack, creator, "campaigns", "show", "6d1f6f4e-0000-4000-8000-000000000000")
    assert missing.returncode == 4

    unreachable = crowdfund(stack, creator, "campaigns", "list", gateway="http://127.0.0.1:9")
    assert unreachable.returncode == 6
    assert "cannot reach the gateway" in unreachable.stderr

    as_json = crowdfund(stack, creator, "--json", "campaigns", "launch", campaign["id"])
    assert json.loads(as_json.stderr)["error"]["status"] == 409
