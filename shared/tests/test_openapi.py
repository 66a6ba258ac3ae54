from __future__ import annotations

import json

from fastapi import FastAPI


def test_the_openapi_document_is_clean_for_generated_clients(widget_app: FastAPI) -> None:
    doc = widget_app.openapi()
    create = doc["paths"]["/v1/widgets"]["post"]
    assert create["operationId"] == "create_widget"  # the function name: clean client method names
    assert create["responses"]["422"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    assert create["responses"]["409"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    header = next(p for p in create["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header"
    assert header["required"] is True
    assert "HTTPValidationError" not in json.dumps(doc)
    assert {"type", "title", "status", "code"} <= set(doc["components"]["schemas"]["Problem"]["required"])
    assert "/internal/events" not in doc["paths"]  # no internal router in this app
