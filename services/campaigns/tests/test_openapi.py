"""The OpenAPI document is what creators generate clients from: clean, unique, documented."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.campaigns.app import create_app


@cache
def document() -> dict[str, Any]:
    return create_app().openapi()


def test_operation_ids_are_the_endpoint_names_and_unique() -> None:
    schema = document()
    operations = [op for path in schema["paths"].values() for op in path.values()]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids))
    assert all(op_id.isidentifier() and op_id.islower() for op_id in ids)
    assert {"create_campaign", "submit_campaign", "record_checklist_item", "reserve_capacity"} <= set(ids)


def test_every_operation_is_described_and_documents_its_errors() -> None:
    schema = document()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            assert operation.get("description"), (method, path)
            errors = [status for status in operation["responses"] if status.startswith(("4", "5"))]
            assert errors, (method, path)
            for status in errors:
                if status == "422" and "application/json" in operation["responses"][status].get("content", {}):
                    continue  # FastAPI's own validation entry, rendered as a problem at runtime
                content = operation["responses"][status]["content"]
                assert "application/problem+json" in content, (method, path, status)


def test_internal_routes_are_tagged_internal_and_public_ones_are_versioned() -> None:
    schema = document()
    for path, methods in schema["paths"].items():
        for operation in methods.values():
            if path.startswith("/internal/"):
                assert operation["tags"] == ["internal"]
            else:
                assert path.startswith("/v1/campaigns")
