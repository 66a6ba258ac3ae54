"""What every resource handler shares: the request context, events, rendering, pagination."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import API_VERSION, ids
from .config import Settings
from .db import Database, UnitOfWork
from .errors import StripeError, invalid, missing

Obj = dict[str, Any]


@dataclass
class AppState:
    """Long-lived state shared by requests and background workers."""

    settings: Settings
    db: Database
    rng: random.Random
    endpoints: list[Obj] = field(default_factory=list)
    wake_dispatcher: Callable[[], None] = lambda: None
    wake_scheduler: Callable[[], None] = lambda: None

    def reload_endpoints(self) -> None:
        self.endpoints = [
            e for e in self.db.page_objects("webhook_endpoint", {}, after_seq=None, before_seq=None, limit=10_000)
        ]


class Ctx:
    """One unit of work: a request, or one background transition."""

    def __init__(
        self, state: AppState, uow: UnitOfWork, *, request_id: str | None, idempotency_key: str | None
    ) -> None:
        self.state = state
        self.uow = uow
        self.db = state.db
        self.settings = state.settings
        self.request_id = request_id
        self.idempotency_key = idempotency_key
        self.started_at = time.time()
        self.now = int(self.started_at)
        self.endpoints_changed = False
        # Declines persist the PaymentIntent, its failed charge and events, then answer 402.
        self.keep_on_error = False
        # Top-level fields added to the response only (the webhook endpoint secret at creation).
        self.response_extra: Obj | None = None

    def get(self, obj_id: Any, obj_type: str) -> Obj | None:
        if not isinstance(obj_id, str):
            return None
        obj = self.uow.get(obj_id)
        return obj if obj is not None and obj["object"] == obj_type else None

    def put(self, obj: Obj) -> Obj:
        self.uow.put(obj)
        return obj

    def emit(self, event_type: str, obj: Obj, previous: Obj | None = None) -> None:
        data: Obj = {"object": public(obj)}
        if previous:
            data["previous_attributes"] = previous
        targets = [e for e in self.state.endpoints if _subscribed(e, event_type)]
        event: Obj = {
            "id": ids.new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now,
            "data": data,
            "livemode": False,
            "pending_webhooks": len(targets),
            "request": {"id": self.request_id, "idempotency_key": self.idempotency_key},
            "type": event_type,
        }
        self.uow.add_event(event, orjson.dumps(event), obj.get("id"))
        settings = self.settings
        # One due time per unit of work: with reordering on, its events then leave as one batch, newest first.
        hold = settings.webhook_reorder_window_seconds if settings.webhook_reorder else 0.0
        at = self.started_at + hold
        for endpoint in targets:
            self.uow.add_delivery(event["id"], endpoint["id"], at)
            # Stripe may deliver an event more than once; the receiver must dedupe on event id.
            if settings.webhook_duplicate_rate and self.state.rng.random() < settings.webhook_duplicate_rate:
                self.uow.add_delivery(event["id"], endpoint["id"], at)

    def schedule(self, kind: str, object_id: str) -> None:
        self.uow.schedule(time.time() + self.settings.async_delay_seconds, kind, object_id)


def _subscribed(endpoint: Obj, event_type: str) -> bool:
    if endpoint.get("status") != "enabled":
        return False
    enabled = endpoint.get("enabled_events") or []
    return "*" in enabled or event_type in enabled


# -- rendering --------------------------------------------------------------------------------

# Fields that ``expand[]`` may replace by the object they name (dotted paths walk into hashes).
EXPANDABLE: dict[str, dict[str, str]] = {
    "payment_intent": {"customer": "customer", "latest_charge": "charge", "payment_method": "payment_method"},
    "charge": {"customer": "customer", "payment_intent": "payment_intent", "refunds": "refund_list"},
    "refund": {"charge": "charge", "payment_intent": "payment_intent"},
    "payment_method": {"customer": "customer"},
    "setup_intent": {"customer": "customer", "payment_method": "payment_method"},
    "customer": {"invoice_settings.default_payment_method": "payment_method"},
}


def public(obj: Obj) -> Obj:
    """The object as the API shows it: without the server's private ``_local`` state."""
    local = obj.get("_local")
    if local is None:
        return obj.copy()
    if local.get("deleted"):
        return {"id": obj["id"], "object": obj["object"], "deleted": True}
    out = obj.copy()  # a C-level copy and one pop: far cheaper than filtering every key
    del out["_local"]
    return out


def _split(obj_type: str, path: str) -> tuple[str, str, str]:
    for field_path, target in EXPANDABLE.get(obj_type, {}).items():
        if path == field_path or path.startswith(field_path + "."):
            return field_path, target, path[len(field_path) + 1 :]
    raise invalid(f"This property cannot be expanded ({path}).")


def check_expand(obj_type: str, paths: list[str], *, is_list: bool = False) -> None:
    for path in paths:
        if is_list:
            if not path.startswith("data."):
                raise invalid(
                    f"This property cannot be expanded ({path}). You may want to try expanding 'data.{path}' instead."
                )
            path = path[5:]
        rest: str = path
        current = obj_type
        while rest:
            _, target, rest = _split(current, rest)
            current = "refund" if target == "refund_list" else target
            if target == "refund_list" and rest.startswith("data."):
                rest = rest[5:]


def render(get: Callable[[str], Obj | None], obj: Obj, expand: list[str] | None = None) -> Obj:
    out = public(obj)
    for path in expand or ():
        if "deleted" in out:
            break
        field_path, target, rest = _split(obj["object"], path)
        _expand_one(get, obj, out, field_path, target, rest)
    return out


def _expand_one(get: Callable[[str], Obj | None], obj: Obj, out: Obj, field_path: str, target: str, rest: str) -> None:
    *parents, leaf = field_path.split(".")
    holder = out
    for name in parents:
        inner = holder.get(name)
        if not isinstance(inner, dict):
            return
        holder[name] = dict(inner)
        holder = holder[name]
    if target == "refund_list":
        refunds = [get(rid) for rid in reversed(obj.get("_local", {}).get("refunds", []))]
        sub = rest[5:] if rest.startswith("data.") else ""
        holder[leaf] = {
            "object": "list",
            "data": [render(get, r, [sub] if sub else None) for r in refunds if r is not None],
            "has_more": False,
            "total_count": len(refunds),
            "url": f"/v1/charges/{obj['id']}/refunds",
        }
        return
    value = holder.get(leaf)
    if isinstance(value, dict):  # already expanded by an earlier path: expand further inside it
        child = get(value["id"])
    elif isinstance(value, str):
        child = get(value)
    else:
        return
    if child is not None:
        holder[leaf] = render(get, child, [rest] if rest else None)


@dataclass
class ListPage:
    data: list[Obj]
    has_more: bool
    url: str
    extra: Obj = field(default_factory=dict)

    def render(self, get: Callable[[str], Obj | None], expand: list[str] | None) -> Obj:
        item_expand = [p[5:] for p in expand or () if p.startswith("data.")]
        extra = dict(self.extra)
        body: Obj = {"object": extra.pop("object", "list")}
        body.update(extra)
        body["data"] = [render(get, o, item_expand) for o in self.data]
        body["has_more"] = self.has_more
        if "next_page" in extra:  # search results put next_page after has_more, like Stripe
            body["next_page"] = body.pop("next_page")
        body["url"] = self.url
        return body


def page_bounds(params: Obj) -> tuple[int, str | None, str | None]:
    # Recorded (stripe_world 08): limit=0 returns one item and limit=101 returns 100 - a silent clamp.
    limit = min(max(int(params.get("limit", 10)), 1), 100)
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise invalid("Received both starting_after and ending_before parameters. Please pass in only one.")
    return limit, after or None, before or None


def paginate(
    ctx: Ctx, obj_type: str, params: Obj, url: str, filters: dict[str, str], label: str, extra: Obj | None = None
) -> ListPage:
    limit, after, before = page_bounds(params)
    after_seq = before_seq = None
    for cursor, param in ((after, "starting_after"), (before, "ending_before")):
        if cursor is None:
            continue
        seq = ctx.db.seq_of(cursor)
        obj = ctx.db.get(cursor)
        if seq is None or obj is None or obj["object"] != obj_type:
            raise missing(label, cursor, param=param, status=400)
        if param == "starting_after":
            after_seq = seq
        else:
            before_seq = seq
    rows = ctx.db.page_objects(obj_type, filters, after_seq=after_seq, before_seq=before_seq, limit=limit + 1)
    has_more = len(rows) > limit
    if has_more:
        rows = rows[1:] if before_seq is not None else rows[:limit]
    return ListPage(rows, has_more, url, extra or {})


# -- money ------------------------------------------------------------------------------------

ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
CURRENCIES = frozenset(
    "usd aed aud bgn brl cad chf cny czk dkk eur gbp hkd huf idr ils inr isk jpy krw mxn myr nok nzd php "
    "pln ron sek sgd thb try twd zar clp vnd".split()
)
# https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts
MINIMUM_CHARGE = {
    "gbp": 30,
    "aed": 200,
    "bgn": 100,
    "czk": 1500,
    "dkk": 250,
    "hkd": 400,
    "huf": 17500,
    "mxn": 1000,
    "myr": 200,
    "nok": 300,
    "pln": 200,
    "ron": 200,
    "sek": 300,
    "thb": 1000,
}
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}


def format_amount(amount: int, currency: str) -> str:
    """As Stripe writes amounts in messages: ``$25.00``."""
    symbol = _SYMBOLS.get(currency)
    value = str(amount) if currency in ZERO_DECIMAL else f"{amount / 100:.2f}"
    return f"{symbol}{value}" if symbol else f"{value} {currency.upper()}"


def check_currency(currency: str) -> str:
    currency = currency.lower()
    if currency not in CURRENCIES:
        raise StripeError(
            400,
            f"Invalid currency: {currency}. Stripe currently supports these currencies: "
            + ", ".join(sorted(CURRENCIES)),
            param="currency",
        )
    return currency


# -- updates ----------------------------------------------------------------------------------


def merge_metadata(current: Obj, update: Obj | None) -> Obj:
    """Stripe merges metadata keys on update; a key set to "" is removed; "" clears all."""
    if update is None:
        return current
    if update == {}:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def diff(before: Obj, after: Obj) -> Obj:
    """``previous_attributes`` of an ``*.updated`` event: the previous value of what changed."""
    previous: Obj = {}
    for key, new in after.items():
        if key.startswith("_"):
            continue
        old = before.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            previous[key] = {k: old.get(k) for k in set(old) | set(new) if old.get(k) != new.get(k)}
        else:
            previous[key] = old
    return previous


def method_types(p: Obj, dashboard: list[str], pmc_id: str) -> tuple[list[str], Obj | None, Obj | None, Any, Any]:
    """Which payment method types an intent accepts: ``payment_method_types`` (the 2026-08-26 name)
    or ``allowed_payment_method_types`` (the name in the SDK's newer API version) pin them;
    otherwise the account's dashboard configuration applies, minus ``excluded_payment_method_types``.
    Returns (types, automatic_payment_methods, payment_method_configuration_details, allowed, excluded)."""
    allowed = p.get("allowed_payment_method_types") or None
    excluded = p.get("excluded_payment_method_types") or None
    pinned = p.get("payment_method_types") or allowed
    apm_param = p.get("automatic_payment_methods")
    if pinned:
        return list(pinned), None, None, allowed, excluded
    if apm_param is not None and not apm_param["enabled"]:
        return ["card"], None, None, allowed, excluded
    types = [t for t in dashboard if t not in (excluded or ())]
    apm = {"allow_redirects": (apm_param or {}).get("allow_redirects") or "always", "enabled": True}
    return types, apm, {"id": pmc_id, "parent": None}, allowed, excluded


def blank_to_none(value: Any) -> Any:
    return None if value == "" else value
