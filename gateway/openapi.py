"""One OpenAPI document for the whole product, merged from each service's own document.

Only operations the gateway actually routes are included (``/internal/...`` never is). operationIds must
be unique across services: a clash is reported in ``x-merge-conflicts`` and fails the contract test.
Schemas with the same name and the same content are shared; same name, different content is a clash too.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from typing import Any

import httpx
import structlog

from gateway.routing import is_public_operation, resolve

log = structlog.get_logger("gateway.openapi")

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
BEARER = "bearerAuth"


def merge_documents(documents: dict[str, dict[str, Any]], *, title: str, version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    tags: dict[str, dict[str, Any]] = {}
    operation_ids: dict[str, str] = {}
    conflicts: list[str] = []

    for service, document in sorted(documents.items()):
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            if name in schemas and schemas[name] != schema:
                conflicts.append(f"schema {name!r} differs between services ({service})")
            schemas.setdefault(name, schema)
        for tag in document.get("tags", []):
            tags.setdefault(tag["name"], tag)
        for path, item in document.get("paths", {}).items():
            for method in HTTP_METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                match = resolve(method.upper(), _concrete(path))
                if match is None or match.service != service:
                    continue  # not routed by the gateway (internal, health) or owned by another service
                operation = copy.deepcopy(operation)
                op_id = operation.get("operationId")
                if op_id in operation_ids:
                    conflicts.append(f"operationId {op_id!r} used by {operation_ids[op_id]} and {service}")
                operation_ids[op_id] = service
                public = is_public_operation(method, path)
                operation["security"] = [{}, {BEARER: []}] if public else [{BEARER: []}]
                operation.setdefault("tags", [service])
                operation["x-service"] = service
                paths.setdefault(path, {})[method] = operation
                for tag in operation["tags"]:
                    tags.setdefault(tag, {"name": tag})

    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "The public API of the crowdfunding platform. Authenticate with "
            "`Authorization: Bearer <JWT>`; errors are RFC 9457 `application/problem+json`.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "tags": sorted(tags.values(), key=lambda t: t["name"]),
    }
    if conflicts:
        merged["x-merge-conflicts"] = conflicts
    return merged


def _concrete(path_template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path_template)


class OpenAPICache:
    """Fetches the services' documents (concurrently, with a timeout), merges them, caches the result."""

    def __init__(self, upstreams: dict[str, str], client: httpx.AsyncClient, ttl_seconds: float, version: str):
        self.upstreams = upstreams
        self.client = client
        self.ttl = ttl_seconds
        self.version = version
        self._documents: dict[str, dict[str, Any]] = {}
        self._merged: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def _fetch(self, service: str, base_url: str) -> None:
        try:
            response = await self.client.get(f"{base_url}/openapi.json", timeout=3.0)
            response.raise_for_status()
            self._documents[service] = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("gateway.openapi_fetch_failed", service=service, error=type(exc).__name__)

    async def document(self) -> dict[str, Any]:
        async with self._lock:
            complete = len(self._documents) == len(self.upstreams)
            if self._merged is None or not complete or time.monotonic() - self._fetched_at > self.ttl:
                await asyncio.gather(*(self._fetch(s, url) for s, url in self.upstreams.items()))
                self._merged = merge_documents(self._documents, title="Crowdfund API", version=self.version)
                missing = sorted(set(self.upstreams) - set(self._documents))
                if missing:
                    self._merged["x-unavailable-services"] = missing
                self._fetched_at = time.monotonic()
            return self._merged
