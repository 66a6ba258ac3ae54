from __future__ import annotations

from typing import Any

from gateway.openapi import merge_documents


def _doc(paths: dict[str, Any], schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"openapi": "3.1.0", "paths": paths, "components": {"schemas": schemas or {}}}


def _op(op_id: str, schema: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": "ok"}
    if schema:
        response["content"] = {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return {"operationId": op_id, "responses": {"200": response}}


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


def test_schemas_used_only_by_internal_routes_stay_out() -> None:
    schemas = {
        "Campaign": {"type": "object", "properties": {"owner": {"$ref": "#/components/schemas/Owner"}}},
        "Owner": {"type": "object"},
        "Reservation": {"type": "object"},
    }
    docs = {
        "campaigns": _doc(
            {
                "/v1/campaigns": {"get": _op("list_campaigns", "Campaign")},
                "/internal/campaigns/{id}/reservations": {"post": _op("reserve_capacity", "Reservation")},
            },
            schemas,
        )
    }
    merged = merge_documents(docs, title="t", version="1")
    assert set(merged["components"]["schemas"]) == {"Campaign", "Owner"}  # Owner: reached through Campaign


def test_clashing_schema_names_are_prefixed_and_references_follow() -> None:
    docs = {
        "campaigns": _doc(
            {"/v1/campaigns": {"get": _op("list_campaigns", "AuditEntry")}}, {"AuditEntry": {"type": "object"}}
        ),
        "refunds": _doc(
            {"/v1/refund-batches": {"get": _op("list_batches", "Page")}},
            {
                "Page": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
                "AuditEntry": {"type": "string"},
            },
        ),
    }
    merged = merge_documents(docs, title="t", version="1")
    schemas = merged["components"]["schemas"]
    assert schemas["AuditEntry"] == {"type": "object"}  # first in service-name order keeps the plain name
    assert schemas["RefundsAuditEntry"] == {"type": "string", "title": "RefundsAuditEntry"}
    assert schemas["Page"]["items"] == {"$ref": "#/components/schemas/RefundsAuditEntry"}
    assert merged["x-renamed-schemas"] == {"refunds:AuditEntry": "RefundsAuditEntry"}
    assert "x-merge-conflicts" not in merged


def test_clashing_operation_ids_are_conflicts() -> None:
    docs = {
        "campaigns": _doc({"/v1/campaigns": {"get": _op("list")}}),
        "pledges": _doc({"/v1/pledges": {"get": _op("list")}}),
    }
    conflicts = merge_documents(docs, title="t", version="1")["x-merge-conflicts"]
    assert any("operationId 'list'" in c for c in conflicts)


def test_identical_schemas_are_shared_without_renaming() -> None:
    problem = {"type": "object", "properties": {"code": {"type": "string"}}}
    docs = {
        "campaigns": _doc({"/v1/campaigns": {"get": _op("a", "Problem")}}, {"Problem": problem}),
        "refunds": _doc({"/v1/refund-batches": {"get": _op("b", "Problem")}}, {"Problem": dict(problem)}),
    }
    merged = merge_documents(docs, title="t", version="1")
    assert merged["components"]["schemas"]["Problem"] == problem
    assert "x-renamed-schemas" not in merged
