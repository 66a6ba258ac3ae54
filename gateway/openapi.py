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

# The public API's version. Bump the major part to remove an operation or a field (tools/openapi_contract.py).
API_VERSION = "1.0.0"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
BEARER = "bearerAuth"


REF_PREFIX = "#/components/schemas/"


def _refs(node: Any) -> set[str]:
    """Schema names referenced anywhere under ``node``."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX) :])
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _reachable(roots: set[str], schemas: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        pending.extend(_refs(schemas[name]) - seen)
    return seen


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {k: _rename_refs(v, renames) for k, v in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX) and ref[len(REF_PREFIX) :] in renames:
            out["$ref"] = REF_PREFIX + renames[ref[len(REF_PREFIX) :]]
        return out
    if isinstance(node, list):
        return [_rename_refs(v, renames) for v in node]
    return node


def _routed_operations(service: str, document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    operations = []
    for path, item in document.get("paths", {}).items():
        for method in HTTP_METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            match = resolve(method.upper(), _concrete(path))
            if match is not None and match.service == service:
                operations.append((path, method, operation))
    return operations


def merge_documents(documents: dict[str, dict[str, Any]], *, title: str, version: str) -> dict[str, Any]:
    """Merge the services' documents into one, keeping only what the gateway routes.

    Only schemas reachable from routed operations are kept (internal contracts stay internal). Two services
    may use the same schema name: identical content is shared; different content is kept under a
    service-prefixed name (``RefundsAuditEntry``) and recorded in ``x-renamed-schemas``, first come (in
    service-name order) keeps the plain name, so names are stable. Duplicate operationIds are conflicts.
    """
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    tags: dict[str, dict[str, Any]] = {}
    operation_ids: dict[str, str] = {}
    conflicts: list[str] = []
    renamed: dict[str, str] = {}

    for service, document in sorted(documents.items()):
        own_schemas = document.get("components", {}).get("schemas", {})
        operations = _routed_operations(service, document)
        needed = _reachable(set().union(*(_refs(op) for _, _, op in operations)) if operations else set(), own_schemas)
        renames = {}
        for name in sorted(needed):
            if name in schemas and schemas[name] != own_schemas[name]:
                renames[name] = service.title().replace("-", "").replace("_", "") + name
                renamed[f"{service}:{name}"] = renames[name]
        for name in sorted(needed):
            schema = _rename_refs(own_schemas[name], renames)
            if name in renames:
                schema["title"] = renames[name]  # generators name classes by title
            schemas.setdefault(renames.get(name, name), schema)
        for tag in document.get("tags", []):
            tags.setdefault(tag["name"], tag)
        for path, method, operation in operations:
            operation = _rename_refs(copy.deepcopy(operation), renames)
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
    if renamed:
        merged["x-renamed-schemas"] = renamed
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
