from __future__ import annotations

from typing import Any

from gateway.openapi import merge_documents


def _doc(paths: dict[str, Any], schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas or {}}}


def _op(op_id: str) -> dict[str, Any]:
    return {"operationId": op_id, "responses": {"200": {"description": "ok"}}}


def test_only_routed_operations_are_merged_with_their_security() -> None:
    docs = {
        "campaigns": _doc(
            {
                "/v1/campaigns": {"get": _op("list_campaigns"), "post": _op("create_campaign")},
                "/internal/campaigns/{id}/reservations": {"post": _op("reserve_capacity")},
                "/readyz": {"get": _op("readyz")},
            }
        ),
        "pledges": _doc({"/v1/pledges": {"get": _op("list_pledges")}, "/v1/campaigns": {"put": _op("stray")}}),
    }
    merged = merge_documents(docs, title="t", version="1")
    assert set(merged["paths"]) == {"/v1/campaigns", "/v1/pledges"}
    assert set(merged["paths"]["/v1/campaigns"]) == {"get", "post"}  # pledges may not claim a campaigns path
    assert merged["paths"]["/v1/campaigns"]["get"]["security"] == [{}, {"bearerAuth": []}]
    assert merged["paths"]["/v1/campaigns"]["post"]["security"] == [{"bearerAuth": []}]
    assert merged["paths"]["/v1/pledges"]["get"]["x-service"] == "pledges"
    assert "x-merge-conflicts" not in merged


def test_clashing_operation_ids_and_schemas_are_reported() -> None:
    docs = {
        "campaigns": _doc({"/v1/campaigns": {"get": _op("list")}}, {"Thing": {"type": "object"}}),
        "pledges": _doc({"/v1/pledges": {"get": _op("list")}}, {"Thing": {"type": "string"}}),
    }
    conflicts = merge_documents(docs, title="t", version="1")["x-merge-conflicts"]
    assert any("operationId 'list'" in c for c in conflicts)
    assert any("schema 'Thing'" in c for c in conflicts)


def test_identical_schemas_are_shared_without_conflict() -> None:
    problem = {"type": "object", "properties": {"code": {"type": "string"}}}
    docs = {
        "campaigns": _doc({"/v1/campaigns": {"get": _op("a")}}, {"Problem": problem}),
        "refunds": _doc({"/v1/refund-batches": {"get": _op("b")}}, {"Problem": dict(problem)}),
    }
    merged = merge_documents(docs, title="t", version="1")
    assert merged["components"]["schemas"]["Problem"] == problem
    assert "x-merge-conflicts" not in merged
