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
    lines = [f"# Benchmark results ({m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']})", ""]
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
            f"- committed {rush['committed_amount']} <= cap {rush['cap_amount']}; equals the sum of accepted "
            f"pledges: {rush['committed_equals_accepted']}; reconciliation consistent: "
            f"{rush['reconciliation_consistent']}; accepted pledges without a saved card: "
            f"{rush['accepted_without_saved_card']}",
            f"- peak RSS (MiB): {rush['peak_rss_mib']}",
            f"- CPU during the rush (% of one core): {rush['cpu_percent_of_one_core']}",
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
    summary = "\n".join(lines)
    (directory / "summary.md").write_text(summary)
    return summary
