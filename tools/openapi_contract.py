"""The public API's contract, kept in ``openapi/contract.json``: every operation's operationId and every schema's
fields. ``check`` fails when an operationId changed or a field or operation disappeared and the API's major
version was not bumped; additions are always fine. ``write`` records the current contract after a change.

    python -m tools.openapi_contract check
    python -m tools.openapi_contract write
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gateway.openapi import API_VERSION, HTTP_METHODS, merge_documents

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "openapi" / "contract.json"


def merged_document() -> dict[str, Any]:
    """The gateway's merged document, built from the services' apps in-process (no server needed)."""
    from services.campaigns.app import create_app as campaigns
    from services.pledges.app import create_app as pledges
    from services.refunds.app import create_app as refunds

    documents = {"campaigns": campaigns().openapi(), "pledges": pledges().openapi(), "refunds": refunds().openapi()}
    return merge_documents(documents, title="Crowdfund API", version=API_VERSION)


def contract_of(document: dict[str, Any]) -> dict[str, Any]:
    operations = {
        f"{method.upper()} {path}": operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }
    schemas = {
        name: sorted(schema.get("properties", {})) if "properties" in schema else sorted(schema.get("enum", []))
        for name, schema in document["components"]["schemas"].items()
    }
    return {"version": document["info"]["version"], "operations": operations, "schemas": schemas}


def breaking_changes(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    changes = []
    for operation, op_id in recorded["operations"].items():
        if operation not in current["operations"]:
            changes.append(f"operation removed: {operation} ({op_id})")
        elif current["operations"][operation] != op_id:
            changes.append(f"operationId changed: {operation}: {op_id} -> {current['operations'][operation]}")
    for schema, members in recorded["schemas"].items():
        if schema not in current["schemas"]:
            changes.append(f"schema removed: {schema}")
            continue
        for member in members:
            if member not in current["schemas"][schema]:
                changes.append(f"field or value removed: {schema}.{member}")
    return changes


def _major(version: str) -> int:
    return int(version.split(".")[0])


def check(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Breaking changes that are not covered by a major version bump."""
    if _major(current["version"]) > _major(recorded["version"]):
        return []
    return breaking_changes(recorded, current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.openapi_contract", description=__doc__)
    parser.add_argument("command", choices=["check", "write"])
    args = parser.parse_args(argv)
    current = contract_of(merged_document())
    if args.command == "write":
        CONTRACT.parent.mkdir(exist_ok=True)
        CONTRACT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        print(f"wrote {CONTRACT.relative_to(ROOT)}: {len(current['operations'])} operations")
        return 0
    problems = check(json.loads(CONTRACT.read_text()), current)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
