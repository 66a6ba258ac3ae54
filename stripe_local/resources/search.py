"""The Search API for the queries a reconciliation job makes: ``metadata['pledge_id']:'p-1'``,
``status:'succeeded' AND customer:'cus_...'``, ``-status:'canceled'``; clauses joined by AND.

Deliberate difference: Stripe's search is eventually consistent (new objects can take up to a
minute to appear); here an object is searchable as soon as it is acknowledged.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from ..core import Ctx, ListPage, Obj
from ..errors import invalid
from ..params import EXPAND, Int, Str

SEARCH = {"query": Str(required=True), "limit": Int(), "page": Str(), "expand": EXPAND}

# field:value, field:'value', metadata['key']:'value', with an optional leading "-" (negation).
_CLAUSE = re.compile(
    r"""^(?P<neg>-)?(?P<field>metadata\[(?P<q>['"])(?P<key>[^'"]+)(?P=q)\]|[a-z_]+)\s*:\s*"""
    r"""(?:(?P<vq>['"])(?P<quoted>.*?)(?P=vq)|(?P<bare>[^\s'"]+))$"""
)
FIELDS = {
    "payment_intent": {"amount", "currency", "customer", "status", "created"},
    "charge": {"amount", "currency", "customer", "status", "payment_intent", "refunded", "disputed", "created"},
    "customer": {"email", "name", "phone", "created"},
}
_NUMERIC = {"amount", "created"}


def _conditions(obj_type: str, query: str) -> list[tuple[str, str, Any]]:
    conditions: list[tuple[str, str, Any]] = []
    for clause in re.split(r"\s+AND\s+", query.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(clause.strip())
        if match is None or (" OR " in clause.upper()):
            raise invalid(
                f"We were unable to parse your search query. Try using the format `metadata['key']:'value'`"
                f" or `field:'value'`. Query: {query}",
                param="query",
            )
        value: Any = match.group("quoted") if match.group("quoted") is not None else match.group("bare")
        if match.group("key"):
            path = f'$.metadata."{match.group("key")}"'
        else:
            field = match.group("field")
            if field not in FIELDS[obj_type]:
                raise invalid(
                    f"Field `{field}` is an unsupported search field for resource `{obj_type}s`.", param="query"
                )
            path = f"$.{field}"
            if field in _NUMERIC:
                value = int(value)
            elif field in ("refunded", "disputed"):
                value = 1 if value == "true" else 0
        conditions.append((path, "!=" if match.group("neg") else "=", value))
    return conditions


def search(ctx: Ctx, p: Obj, obj_type: str) -> ListPage:
    limit = min(max(int(p.get("limit", 10)), 1), 100)
    after_seq = None
    if p.get("page"):
        try:
            after_seq = int(base64.urlsafe_b64decode(p["page"].encode()).decode())
        except ValueError:
            raise invalid("Invalid page token.", param="page") from None
    rows = ctx.db.search_objects(obj_type, _conditions(obj_type, p["query"]), after_seq=after_seq, limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_page = base64.urlsafe_b64encode(str(rows[-1][0]).encode()).decode() if has_more and rows else None
    return ListPage(
        [obj for _, obj in rows],
        has_more,
        f"/v1/{obj_type}s/search",
        {"object": "search_result", "next_page": next_page},
    )


def payment_intents(ctx: Ctx, p: Obj) -> ListPage:
    return search(ctx, p, "payment_intent")


def charges(ctx: Ctx, p: Obj) -> ListPage:
    return search(ctx, p, "charge")


def customers(ctx: Ctx, p: Obj) -> ListPage:
    return search(ctx, p, "customer")
