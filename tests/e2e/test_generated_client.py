"""A Python client generated from the gateway's live OpenAPI document drives a creator's whole path."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from shared.testing import user_token
from tools.stack import Stack

pytestmark = pytest.mark.e2e

PACKAGE = "crowdfund_api_generated"


@pytest.fixture(scope="module")
def generated(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    workdir = tmp_path_factory.mktemp("client")
    document = httpx.get(stack.config.url("gateway") + "/openapi.json", timeout=10).json()
    (workdir / "openapi.json").write_text(json.dumps(document))
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(
        [
            str(bin_dir / "openapi-python-client"),
            "generate",
            "--path",
            str(workdir / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(workdir / PACKAGE),
        ],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(workdir))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(workdir))
        for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
            del sys.modules[name]


def test_method_and_model_names_are_clean(generated: ModuleType) -> None:
    root = Path(generated.__file__).parent
    modules = {p.stem for p in (root / "api").rglob("*.py") if p.stem != "__init__"}
    assert {"create_campaign", "create_tier", "submit_campaign", "get_vetting_record", "update_campaign"} <= modules
    models = {p.stem for p in (root / "models").glob("*.py")}
    assert not [m for m in models if m.startswith("body_") or "_v1_" in m], models
    assert "http_validation_error" not in models  # 422 is documented as a problem document
    assert "event_envelope" not in models  # internal contracts are not part of the public client


def test_a_creator_drives_the_whole_path_with_the_generated_client(stack: Stack, generated: ModuleType) -> None:
    api = importlib.import_module(f"{PACKAGE}.api.campaigns")
    create_campaign = importlib.import_module(f"{PACKAGE}.api.campaigns.create_campaign")
    get_campaign = importlib.import_module(f"{PACKAGE}.api.campaigns.get_campaign")
    update_campaign = importlib.import_module(f"{PACKAGE}.api.campaigns.update_campaign")
    create_tier = importlib.import_module(f"{PACKAGE}.api.tiers.create_tier")
    submit_campaign = importlib.import_module(f"{PACKAGE}.api.vetting.submit_campaign")
    get_vetting_record = importlib.import_module(f"{PACKAGE}.api.vetting.get_vetting_record")
    models = importlib.import_module(f"{PACKAGE}.models")
    assert api is not None

    client = generated.AuthenticatedClient(
        base_url=stack.config.url("gateway"), token=user_token("gen-client-carol", "creator")
    )
    campaign = create_campaign.sync(
        client=client,
        idempotency_key=str(uuid.uuid4()),
        body=models.CampaignCreate.from_dict(
            {
                "title": "Generated-client lamp",
                "description": "A lamp.",
                "currency": "USD",
                "goal_amount": 50_000,
                "cap_amount": 200_000,
                "funding_model": "flexible",
                "deadline_at": (datetime.now(UTC) + timedelta(days=15)).isoformat(),
                "risks_and_challenges": "Glass breaks.",
                "budget": [{"label": "Glass", "cost_amount": 50_000}],
            }
        ),
    )
    assert isinstance(campaign, models.Campaign), campaign
    tier = create_tier.sync(
        client=client,
        campaign_id=campaign.id,
        idempotency_key=str(uuid.uuid4()),
        body=models.TierCreate.from_dict(
            {
                "title": "A lamp",
                "description": "One lamp.",
                "price_amount": 4_500,
                "items": [{"name": "Lamp", "quantity": 1}],
                "estimated_delivery": "2027-03",
                "shipping": [{"region": "US", "shipping_amount": 800}],
            }
        ),
    )
    assert isinstance(tier, models.Tier), tier

    current = get_campaign.sync_detailed(client=client, campaign_id=campaign.id)
    updated = update_campaign.sync(
        client=client,
        campaign_id=campaign.id,
        if_match=current.headers["etag"],
        body=models.CampaignUpdate(
            disclosure_policy=models.DisclosurePolicy.from_dict(
                {
                    "amount_raised": "percent_of_goal",
                    "backer_count": "bands",
                    "tier_availability": "coarse",
                    "reveal_exact_after_close": True,
                }
            )
        ),
    )
    assert isinstance(updated, models.Campaign), updated
    assert updated.disclosure_policy.amount_raised.value == "percent_of_goal"

    stale = update_campaign.sync(
        client=client, campaign_id=campaign.id, if_match=current.headers["etag"], body=models.CampaignUpdate(title="x")
    )
    assert isinstance(stale, models.Problem)  # 412 is a documented, typed answer
    assert stale.status == 412

    submitted = submit_campaign.sync(client=client, campaign_id=campaign.id)
    assert submitted.status.value == "submitted"
    record = get_vetting_record.sync(client=client, campaign_id=campaign.id)
    assert isinstance(record, models.VettingRecord)
    assert record.status.value == "submitted"
    again = submit_campaign.sync(client=client, campaign_id=campaign.id)
    assert isinstance(again, models.Problem)
    assert again.code == "transition_not_allowed"
