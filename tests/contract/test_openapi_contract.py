"""The public API never loses an operation or a field, nor renames an operationId, without a major version."""

from __future__ import annotations

import json

from tools.openapi_contract import CONTRACT, breaking_changes, check, contract_of, merged_document


def test_the_api_keeps_its_recorded_contract() -> None:
    current = contract_of(merged_document())
    problems = check(json.loads(CONTRACT.read_text()), current)
    assert not problems, "breaking API changes without a major version bump:\n" + "\n".join(problems)


def test_the_merged_document_has_no_conflicts() -> None:
    assert "x-merge-conflicts" not in merged_document()


def _contract(version: str, operations: dict[str, str], schemas: dict[str, list[str]]) -> dict[str, object]:
    return {"version": version, "operations": operations, "schemas": schemas}


def test_the_check_catches_renames_and_removals_and_allows_additions() -> None:
    recorded = _contract("1.0.0", {"GET /v1/x": "get_x", "POST /v1/x": "create_x"}, {"X": ["a", "b"]})
    renamed = _contract("1.1.0", {"GET /v1/x": "fetch_x", "POST /v1/x": "create_x"}, {"X": ["a", "b"]})
    removed_field = _contract("1.1.0", {"GET /v1/x": "get_x", "POST /v1/x": "create_x"}, {"X": ["a"]})
    removed_op = _contract("1.1.0", {"GET /v1/x": "get_x"}, {"X": ["a", "b"]})
    added = _contract(
        "1.0.0", {"GET /v1/x": "get_x", "POST /v1/x": "create_x", "GET /v1/y": "get_y"}, {"X": ["a", "b", "c"], "Y": []}
    )
    assert check(recorded, renamed) == ["operationId changed: GET /v1/x: get_x -> fetch_x"]
    assert check(recorded, removed_field) == ["field or value removed: X.b"]
    assert check(recorded, removed_op) == ["operation removed: POST /v1/x (create_x)"]
    assert check(recorded, added) == []
    assert check(recorded, _contract("2.0.0", {}, {})) == []  # a major version may break
    assert breaking_changes(recorded, _contract("2.0.0", {}, {}))  # ...but the changes are still listed


def test_optional_request_bodies_are_plain_references() -> None:
    """A body typed ``X | None`` becomes ``anyOf [X, null]``, which openapi-python-client turns into a client
    that sends ``Unset`` when the body is omitted; an optional body must be a plain reference."""
    offenders = [
        operation["operationId"]
        for item in merged_document()["paths"].values()
        for operation in item.values()
        if "anyOf" in operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    ]
    assert not offenders
