"""`crowdfund refunds`, run as an operator runs it (a subprocess), against the real stack: real pledges charged at
the local Stripe server, a batch previewed, approved by a second operator, started and watched live through the
gateway's progress stream, every pledge refunded exactly once, the report downloaded."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.testing import DatabaseFactory, auth_headers, user_token
from tests.e2e.flows import cli_env, crowdfund, launch_campaign, ok, pledge
from tools.stack import Stack, isolated_stack

pytestmark = pytest.mark.e2e

PRICE = 100_000  # 8 refunds: 800,000 minor units, above the default 500,000 second-approval threshold
PROGRESS_LINE = re.compile(r"^(\w+): (\d+)/(\d+) done")


@pytest.fixture(scope="module")
def stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own whose refunds go out at 2 per second, one at a time (settings of the refunds service),
    so that a batch of a few pledges takes seconds: its progress can be seen moving, and paused."""
    env = {
        "GATEWAY_RATE_LIMIT": "1000/second",
        "STRIPE_LOCAL_ASYNC_DELAY_SECONDS": "0.5",
        "REFUNDS_STRIPE_RATE_LIMIT_PER_SECOND": "2",
        # One refund in flight at a time, few claimed ahead: progress moves one refund at a time.
        "REFUNDS_STRIPE_MAX_CONCURRENCY": "1",
        "REFUNDS_WORKER_CLAIM_SIZE": "2",
        "REFUNDS_SSE_POLL_SECONDS": "0.2",
    }
    with isolated_stack(database_factory, tmp_path_factory.mktemp("cli-refunds-stack"), env) as running:
        yield running


def watch(stack: Stack, token: str, batch_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "crowdfund_cli.main", "refunds", "watch", batch_id],
        env=cli_env(stack, token),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _progress(lines: list[str]) -> list[tuple[str, int, int]]:
    return [(m[1], int(m[2]), int(m[3])) for line in lines if (m := PROGRESS_LINE.match(line))]


def _stripe_refunds(stack: Stack, pledge_id: str) -> list[dict[str, Any]]:
    stripe = stack.config.url("stripe")
    intents = ok(httpx.get(f"{stripe}/_local/payment_intents", params={"metadata[pledge_id]": pledge_id}))["data"]
    assert len(intents) == 1
    refunds = ok(httpx.get(f"{stripe}/_local/refunds", params={"payment_intent": intents[0]["id"]}))["data"]
    return refunds  # type: ignore[no-any-return]


def _wait_for(condition: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_an_operator_previews_approves_starts_and_watches_a_batch_live(
    gateway: httpx.Client, stack: Stack, tmp_path: Path
) -> None:
    live = launch_campaign(gateway, funding_model="flexible", price_amount=PRICE, cap_amount=None)
    backers = [f"cli-refund-{i}" for i in range(9)]
    pledges = [ok(pledge(gateway, live, backer), 201) for backer in backers]
    alice, bob = user_token("cli-op-alice", "operator"), user_token("cli-op-bob", "operator")

    # One backer is refunded on their own first: the batch leaves them out, and says why.
    single = crowdfund(stack, alice, "--json", "refunds", "single", "create", pledges[0]["id"], "--reason", "Asked")
    assert single.returncode == 0, single.stderr
    assert json.loads(single.stdout)["amount"] == PRICE
    first_backer = auth_headers(backers[0], "backer")
    _wait_for(
        lambda: ok(gateway.get(f"/v1/pledges/{pledges[0]['id']}", headers=first_backer))["status"] == "refunded",
        "the single refund",
    )

    key = str(uuid.uuid4())
    create = ("refunds", "create", live.id, "--reason", "Project canceled", "--idempotency-key", key)
    preview = crowdfund(stack, alice, *create)
    assert preview.returncode == 0, preview.stderr
    assert "\x1b[" not in preview.stdout  # no colour codes in a pipe
    assert "8,000.00 USD" in preview.stdout  # 8 pledges of 1,000.00
    assert "a second operator must approve" in preview.stdout
    assert re.search(rf"{pledges[0]['id']}[\s│]+already_refunded", preview.stdout), preview.stdout
    replay = crowdfund(stack, alice, "--json", *create)  # same key: the same batch, not a second one
    batch = json.loads(replay.stdout)
    batch_id = batch["id"]
    assert batch_id in preview.stdout
    assert (batch["status"], batch["item_count"], batch["exclusion_counts"]) == ("preview", 8, {"already_refunded": 1})
    assert batch["totals"] == [{"currency": "USD", "amount": 8 * PRICE, "count": 8}]

    own = crowdfund(stack, alice, "refunds", "approve", batch_id)
    assert own.returncode == 3  # 403: the creator of a large batch cannot approve it alone
    assert "second_approver_required" in own.stderr
    approved = crowdfund(stack, bob, "refunds", "approve", batch_id, "--note", "Checked the list")
    assert approved.returncode == 0, approved.stderr
    assert "is now approved" in approved.stdout

    # Watch from before the start: the first line is the approved batch, nothing done.
    watcher = watch(stack, alice, batch_id)
    assert watcher.stdout is not None
    first_line = watcher.stdout.readline()
    assert first_line.startswith("approved: 0/8 done"), first_line
    started = crowdfund(stack, alice, "refunds", "start", batch_id)
    assert started.returncode == 0, started.stderr
    rest, errors = watcher.communicate(timeout=120)
    assert watcher.returncode == 0, errors
    assert "\x1b[" not in rest
    lines = [first_line, *rest.splitlines()]
    progress = _progress(lines)
    assert any(status == "running" and 0 < done < total == 8 for status, done, total in progress), lines
    dones = [done for _, done, _ in progress]
    assert dones == sorted(dones)  # progress never goes backwards
    assert progress[-1][1:] == (8, 8)
    assert f"Refund batch {batch_id}: completed" in rest, rest
    assert re.search(r"(succeeded|pending)[\s│]+\d+[\s│]+[\d,.]+ USD", rest), rest

    # --json: one object per event, the last one the end of the batch.
    as_json = crowdfund(stack, alice, "--json", "refunds", "watch", batch_id)
    assert as_json.returncode == 0, as_json.stderr
    events = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert events[-1]["event"] == "end"
    assert events[-1]["status"] == "completed"
    assert events[-1]["progress"]["done_items"] == 8

    for made in pledges:  # exactly once at Stripe, the single refund included
        refunds = _stripe_refunds(stack, made["id"])
        assert [r["amount"] for r in refunds] == [PRICE], made["id"]

    report = crowdfund(stack, alice, "refunds", "report", batch_id)
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    assert {r["pledge_id"] for r in rows} == {p["id"] for p in pledges[1:]}
    assert {r["amount"] for r in rows} == {str(PRICE)}
    assert all(r["stripe_refund_id"].startswith("re_") for r in rows)

    target = tmp_path / "report.json"
    saved = crowdfund(stack, alice, "refunds", "report", batch_id, "--format", "json", "-o", str(target))
    assert saved.returncode == 0, saved.stderr
    assert str(target) in saved.stdout
    document = json.loads(target.read_text())
    assert document["batch"]["id"] == batch_id
    assert sorted(i["pledge_id"] for i in document["items"]) == sorted(r["pledge_id"] for r in rows)
    assert {i["stripe_refund_id"] for i in document["items"]} == {r["stripe_refund_id"] for r in rows}


def test_an_operator_pauses_resumes_and_cancels_a_batch_and_watch_reports_it_canceled(
    gateway: httpx.Client, stack: Stack
) -> None:
    live = launch_campaign(gateway, funding_model="flexible", price_amount=5_000, cap_amount=None)
    pledges = [ok(pledge(gateway, live, f"cli-pause-{i}"), 201) for i in range(12)]
    carol = user_token("cli-op-carol", "operator")

    created = crowdfund(
        stack, carol, "--json", "refunds", "create", live.id, "--reason", "Half back",
        "--tier", live.tier["id"], "--percent", "50",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    batch = json.loads(created.stdout)
    batch_id = batch["id"]
    assert batch["amount_rule"] == {"type": "percent", "percent": 50}
    assert batch["selection"]["tier_id"] == live.tier["id"]
    assert batch["totals"] == [{"currency": "USD", "amount": 12 * 2_500, "count": 12}]
    assert batch["requires_second_approval"] is False

    for action in ("approve", "start", "pause"):
        done = crowdfund(stack, carol, "refunds", action, batch_id)
        assert done.returncode == 0, (action, done.stderr)
    shown = crowdfund(stack, carol, "refunds", "show", batch_id)
    assert shown.returncode == 0, shown.stderr
    assert "Refund batch (paused)" in shown.stdout

    # The stream drops (the gateway restarts) while a watcher follows the paused batch: it reconnects.
    watcher = watch(stack, carol, batch_id)
    assert watcher.stdout is not None
    assert watcher.stdout.readline().startswith("paused: ")
    stack.stop("gateway")
    stack.start("gateway")
    assert crowdfund(stack, carol, "refunds", "resume", batch_id).returncode == 0
    canceled = crowdfund(stack, carol, "refunds", "cancel", batch_id, "--note", "Wrong campaign")
    assert canceled.returncode == 0, canceled.stderr
    assert "is now canceled" in canceled.stdout
    rest, errors = watcher.communicate(timeout=120)
    assert watcher.returncode == 8, errors  # canceled: seen on a connection made after the restart
    assert f"Refund batch {batch_id}: canceled" in rest

    audit = json.loads(crowdfund(stack, carol, "--json", "refunds", "audit", batch_id).stdout)
    actions = [entry["action"] for entry in audit]
    assert actions[:6] == ["created", "approved", "started", "paused", "resumed", "canceled"], actions
    assert audit[5]["details"].get("note") == "Wrong campaign"

    report = json.loads(crowdfund(stack, carol, "refunds", "report", batch_id, "--format", "json").stdout)
    sent = {i["pledge_id"] for i in report["items"] if i["status"] in ("succeeded", "pending")}
    never_sent = {i["pledge_id"] for i in report["items"] if i["status"] == "canceled"}
    assert never_sent, "the batch was canceled before every refund went out"
    assert sent | never_sent == {p["id"] for p in pledges}
    for made in pledges:
        assert len(_stripe_refunds(stack, made["id"])) == (1 if made["id"] in sent else 0)


def test_refused_and_unknown_batches_exit_with_stable_codes_and_show_the_problem(
    gateway: httpx.Client, stack: Stack
) -> None:
    dave = user_token("cli-op-dave", "operator")
    unknown = str(uuid.uuid4())

    missing = crowdfund(stack, dave, "refunds", "approve", unknown)
    assert missing.returncode == 4
    assert "Error 404" in missing.stderr
    assert "refund_batch_not_found" in missing.stderr
    as_json = crowdfund(stack, dave, "--json", "refunds", "approve", unknown)
    assert as_json.returncode == 4
    assert json.loads(as_json.stderr)["error"]["code"] == "refund_batch_not_found"
    assert crowdfund(stack, dave, "refunds", "watch", unknown).returncode == 4
    key = str(uuid.uuid4())
    lost = crowdfund(
        stack,
        dave,
        "refunds",
        "create",
        unknown,
        "--reason",
        "Lost",
        "--idempotency-key",
        key,
        gateway="http://127.0.0.1:9",
    )
    assert lost.returncode == 6
    assert f"--idempotency-key {key}" in lost.stderr  # how to retry without refunding twice

    live = launch_campaign(gateway, funding_model="flexible", cap_amount=None)
    creator = crowdfund(stack, user_token("cli-creator", "creator"), "refunds", "create", live.id, "--reason", "Mine")
    assert creator.returncode == 3  # refund batches are for operators

    both = crowdfund(
        stack, dave, "refunds", "create", live.id, "--reason", "x" * 5, "--percent", "5", "--fixed-amount", "1"
    )
    assert both.returncode == 2
    assert "choose one of" in both.stderr

    ok(pledge(gateway, live, "cli-error-backer"), 201)
    batch = json.loads(crowdfund(stack, dave, "--json", "refunds", "create", live.id, "--reason", "Test").stdout)
    assert crowdfund(stack, dave, "refunds", "cancel", batch["id"]).returncode == 0
    again = crowdfund(stack, dave, "refunds", "start", batch["id"])
    assert again.returncode == 5  # 409: a canceled batch does not start
    assert "409" in again.stderr
