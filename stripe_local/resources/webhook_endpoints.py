"""Webhook endpoints, through the API or configured at startup with known secrets."""

from __future__ import annotations

import time
from typing import Any

from .. import ids
from ..core import AppState, Ctx, ListPage, Obj, blank_to_none, merge_metadata, paginate
from ..errors import invalid, missing
from ..params import EXPAND, LIST_PARAMS, Arr, Bool, Meta, Str

CREATE = {
    "url": Str(required=True),
    "enabled_events": Arr(Str(), required=True),
    "description": Str(),
    "metadata": Meta(),
    "api_version": Str(),
    "connect": Bool(),
    "expand": EXPAND,
}
UPDATE = {
    "url": Str(),
    "enabled_events": Arr(Str()),
    "description": Str(),
    "metadata": Meta(),
    "disabled": Bool(),
    "expand": EXPAND,
}
RETRIEVE = {"expand": EXPAND}
DELETE: dict[str, Any] = {}
LIST = LIST_PARAMS


def _check_url(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise invalid(f"Invalid URL: {url}. URLs must begin with http:// or https://", param="url")
    return url


def new_endpoint(
    now: int,
    url: str,
    events: list[str],
    *,
    endpoint_id: str | None = None,
    secret: str | None = None,
    description: str | None = None,
    metadata: Obj | None = None,
    api_version: str | None = None,
) -> Obj:
    return {
        "id": endpoint_id or ids.new_id("we"),
        "object": "webhook_endpoint",
        "api_version": api_version,
        "application": None,
        "created": now,
        "description": description,
        "enabled_events": events,
        "livemode": False,
        "metadata": metadata or {},
        "status": "enabled",
        "url": url,
        "_local": {"secret": secret or f"whsec_{ids.token(32)}"},
    }


def create(ctx: Ctx, p: Obj) -> Obj:
    if not p["enabled_events"]:
        raise invalid("Missing required param: enabled_events.", param="enabled_events", code="parameter_missing")
    endpoint = new_endpoint(
        ctx.now,
        _check_url(p["url"]),
        p["enabled_events"],
        description=blank_to_none(p.get("description")),
        metadata=p.get("metadata"),
        api_version=p.get("api_version"),
    )
    ctx.put(endpoint)
    ctx.endpoints_changed = True
    # The signing secret is only ever returned by the create call, as on Stripe.
    ctx.response_extra = {"secret": endpoint["_local"]["secret"]}
    return endpoint


def _get(ctx: Ctx, endpoint_id: str) -> Obj:
    endpoint = ctx.get(endpoint_id, "webhook_endpoint")
    if endpoint is None or endpoint["_local"].get("deleted"):
        raise missing("webhook_endpoint", endpoint_id, param="id")
    return endpoint


def retrieve(ctx: Ctx, p: Obj, webhook_endpoint: str) -> Obj:
    return _get(ctx, webhook_endpoint)


def update(ctx: Ctx, p: Obj, webhook_endpoint: str) -> Obj:
    endpoint = _get(ctx, webhook_endpoint)
    if p.get("url"):
        endpoint["url"] = _check_url(p["url"])
    if p.get("enabled_events"):
        endpoint["enabled_events"] = p["enabled_events"]
    if "description" in p:
        endpoint["description"] = blank_to_none(p["description"])
    if "metadata" in p:
        endpoint["metadata"] = merge_metadata(endpoint["metadata"], p["metadata"])
    if "disabled" in p:
        endpoint["status"] = "disabled" if p["disabled"] else "enabled"
    ctx.endpoints_changed = True
    return ctx.put(endpoint)


def delete(ctx: Ctx, p: Obj, webhook_endpoint: str) -> Obj:
    endpoint = _get(ctx, webhook_endpoint)
    endpoint["_local"] = {**endpoint["_local"], "deleted": True, "hidden": True}
    ctx.endpoints_changed = True
    return ctx.put(endpoint)


def list_all(ctx: Ctx, p: Obj) -> ListPage:
    return paginate(ctx, "webhook_endpoint", p, "/v1/webhook_endpoints", {}, "webhook_endpoint")


def configure_from_settings(state: AppState) -> None:
    """Upsert ``STRIPE_LOCAL_WEBHOOK_ENDPOINTS`` with stable ids, so restarts do not duplicate them."""
    uow = state.db.begin()
    for spec in state.settings.webhook_endpoints:
        url = spec["url"]
        secret = spec.get("secret") or f"whsec_{ids.stable_token('secret:' + url, 32)}"
        endpoint_id = "we_1" + ids.stable_token("endpoint:" + url, 23)
        events = list(spec.get("enabled_events") or ["*"])
        existing = state.db.get(endpoint_id)
        endpoint = new_endpoint(
            int(time.time()),
            url,
            events,
            endpoint_id=endpoint_id,
            secret=secret,
            description=spec.get("description") or "configured by STRIPE_LOCAL_WEBHOOK_ENDPOINTS",
        )
        if existing is not None:
            endpoint["created"] = existing["created"]
        uow.put(endpoint)
    uow.commit()
    state.reload_endpoints()
