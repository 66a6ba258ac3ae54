"""Benchmark results as JSON plus a short Markdown summary with a latency chart (Mermaid: renders on
GitHub and in most Markdown viewers; no plotting dependency)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _chart(title: str, labels: list[str], values: list[float], axis: str) -> str:
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            f'    title "{title}"',
            "    x-axis [" + ", ".join(f'"{label}"' for label in labels) + "]",
            f'    y-axis "{axis}"',
            "    bar [" + ", ".join(str(v) for v in values) + "]",
            "```",
        ]
    )


def write_report(results: dict[str, Any], directory: Path) -> str:
    (directory / "results.json").write_text(json.dumps(results, indent=2, default=str))
    m = results["machine"]
    load = ", ".join(f"{x:.1f}" for x in m.get("load_average_at_start", ()))
    lines = [
        f"# Benchmark results ({m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']})",
        "",
        f"Load average when the run started: {load} (other work on the machine shifts every figure).",
        "",
    ]
    rush = results.get("rush")
    if rush:
        lat = rush["latency_ms"]
        lines += [
            f"## Launch rush: {rush['backers']} backers, {rush['concurrency']} at a time, cap at 60% of demand",
            "",
            f"- accepted pledges/s: **{rush['accepted_per_second']}** ({rush['accepted']} accepted in "
            f"{rush['elapsed_seconds']} s; all requests: {rush['requests_per_second']}/s)",
            f"- latency p50/p95/p99: {lat[50]} / {lat[95]} / {lat[99]} ms (max {lat['max']} ms)",
            f"- outcomes: {rush['outcomes']}",
            f"- before it, untimed: {rush['warmup']['pledges']} pledges to another campaign at the same concurrency "
            f"(0: a cold start); their latency, cold: {rush['warmup'].get('latency_ms', '-')}",
            f"- committed {rush['committed_amount']} <= cap {rush['cap_amount']}; equals the sum of accepted "
            f"pledges: {rush['committed_equals_accepted']}; reconciliation consistent: "
            f"{rush['reconciliation_consistent']}; accepted pledges without a saved card: "
            f"{rush['accepted_without_saved_card']}",
            f"- peak RSS (MiB): {rush['peak_rss_mib']}",
            f"- CPU during the rush (% of one core): {rush['cpu_percent_of_one_core']}; the machine "
            f"{rush.get('machine_busy_percent', '-')}% busy (all {m['cores']} cores)",
            f"- CPU per accepted pledge (ms): {rush.get('cpu_ms_per_accepted', '-')}",
            f"- the machine's speed: a fixed pure-Python loop took {rush.get('cpu_probe_ms', '-')} ms before/after "
            "the rush (compare runs by it: the same work costs more CPU time on a slower minute)",
            f"- targets: {rush['targets']}",
            "",
            _chart("Pledge latency (ms)", ["p50", "p90", "p95", "p99"], [lat[50], lat[90], lat[95], lat[99]], "ms"),
            "",
        ]
    gateway = results.get("gateway")
    if gateway and "measurements" in gateway:
        rows = gateway["measurements"]
        lines += [
            f"## Gateway overhead: {gateway['route']}",
            "",
            "| path | connections | requests/s | median ms |",
            "|---|---|---|---|",
        ]
        for key, value in rows.items():
            name, connections = key.split("@")
            lines.append(f"| {name} | {connections} | {value['requests_per_second']} | {value['median_ms']} |")
        lines += [
            "",
            f"- gateway/direct throughput at 32 connections: **{gateway['gateway_over_direct_throughput_at_32']}**"
            f" (nginx/direct: {gateway['nginx_over_direct_throughput_at_32']})",
            f"- median added by the gateway at 1 connection: **{gateway['gateway_added_median_ms_at_1']} ms**",
            f"- targets: {gateway['targets']}",
            "",
            _chart(
                "Median latency at 1 connection (ms)",
                [k for k in rows if k.endswith("@1")],
                [v["median_ms"] for k, v in rows.items() if k.endswith("@1")],
                "ms",
            ),
            "",
        ]
    elif gateway:
        lines += ["## Gateway overhead", "", f"- skipped: {gateway['skipped']}", ""]
    refunds = results.get("refunds")
    if refunds:
        lines += _refunds_section(refunds, m["cores"])
    summary = "\n".join(lines)
    (directory / "summary.md").write_text(summary)
    return summary


def _refunds_section(refunds: dict[str, Any], cores: int) -> list[str]:
    lines = [
        f"## Batch refund: {refunds['pledges_per_batch']} charged pledges in one batch ({cores} cores)",
        "",
        "| run | refunds/s | batch s | all pledges refunded after s | max/s at Stripe (1 s windows) | "
        "Stripe 429s | exactly once | targets |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("unlimited", "limited"):
        run = refunds[name]
        limit = run["stripe_limit_per_second"]
        label = f"limit {limit:g}/s" if limit else "no limit"
        share = f" ({100 * run['share_of_limit']:.1f}% of the limit)" if limit else ""
        lines.append(
            f"| {label} | **{run['refunds_per_second']}**{share} | {run['batch_seconds']} | "
            f"{run['all_pledges_refunded_after_seconds']} | {run['stripe_per_second']['max']} | {run['stripe_429s']} | "
            f"{run['exactly_once']} | {run['targets']} |"
        )
    lines += [
        "",
        f"- refunds service settings: {refunds['refunds_service_settings']}; seeding (not timed): "
        + ", ".join(
            f"{refunds[n]['pledges']} pledges in {refunds[n]['seed_seconds']} s" for n in ("unlimited", "limited")
        ),
        f"- exactly once: refunds per PaymentIntent at the Stripe server "
        f"{refunds['unlimited']['refunds_per_payment_intent']} / {refunds['limited']['refunds_per_payment_intent']}",
        "",
        _chart(
            "Refunds per second",
            ["no limit", "limited", "the limit"],
            [
                refunds["unlimited"]["refunds_per_second"],
                refunds["limited"]["refunds_per_second"],
                refunds["limited"]["stripe_limit_per_second"] or 0,
            ],
            "refunds/s",
        ),
        "",
    ]
    series = refunds["limited"]["stripe_per_second"].get("series")
    if series:
        lines += [
            "Refunds the Stripe server created in each second of the limited run (its clock):",
            "",
            "```mermaid",
            "xychart-beta",
            '    title "Refunds created per second at Stripe (limited run)"',
            f'    x-axis "second" 1 --> {len(series)}',
            '    y-axis "refunds"',
            "    line [" + ", ".join(str(v) for v in series) + "]",
            "```",
            "",
        ]
    return lines
