"""Customers."""

from __future__ import annotations

from .. import ids
from ..core import Ctx, ListPage, Obj, blank_to_none, diff, merge_metadata, paginate, public
from ..errors import StripeError, missing
from ..params import ADDRESS, EXPAND, LIST_PARAMS, Arr, Meta, Str
from ..params import Obj as ObjSpec
from . import payment_methods

INVOICE_SETTINGS = ObjSpec({"default_payment_method": Str(), "footer": Str()})
FIELDS = {
    "email": Str(max_length=512),
    "name": Str(max_length=256),
    "description": Str(),
    "phone": Str(max_length=20),
    "address": ADDRESS,
    "metadata": Meta(),
    "preferred_locales": Arr(Str()),
    "invoice_settings": INVOICE_SETTINGS,
    "expand": EXPAND,
}
CREATE = {**FIELDS, "payment_method": Str()}
UPDATE = FIELDS
RETRIEVE = {"expand": EXPAND}
DELETE: dict[str, Str] = {}
LIST = {**LIST_PARAMS, "email": Str(max_length=512)}


def _invoice_prefix() -> str:
    return ids.upper_token(8)


def _apply(ctx: Ctx, customer: Obj, p: Obj) -> None:
    for key in ("email", "name", "description", "phone"):
        if key in p:
            customer[key] = blank_to_none(p[key])
    if "address" in p:
        customer["address"] = p["address"]
    if "preferred_locales" in p:
        customer["preferred_locales"] = p["preferred_locales"]
    if "metadata" in p:
        customer["metadata"] = merge_metadata(customer["metadata"], p["metadata"])
    settings = p.get("invoice_settings")
    if settings:
        merged = dict(customer["invoice_settings"])
        if "footer" in settings:
            merged["footer"] = blank_to_none(settings["footer"])
        if "default_payment_method" in settings:
            pm_id = blank_to_none(settings["default_payment_method"])
            if pm_id is not None:
                pm = ctx.get(pm_id, "payment_method")
                if pm is None or pm["customer"] != customer["id"]:
                    raise StripeError(
                        400,
                        f"The customer does not have a payment method with the ID {pm_id}. The payment method "
                        "must be attached to the customer.",
                        param="invoice_settings[default_payment_method]",
                        code="resource_missing",
                    )
            merged["default_payment_method"] = pm_id
        customer["invoice_settings"] = merged


def create(ctx: Ctx, p: Obj) -> Obj:
    pm = payment_methods.resolve(ctx, p["payment_method"]) if p.get("payment_method") else None
    customer: Obj = {
        "id": ids.customer_id(),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": ctx.now,
        "currency": None,
        "customer_account": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": _invoice_prefix(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
        "_local": {},
    }
    ctx.put(customer)
    if pm is not None:
        payment_methods.attach(ctx, pm, customer)
    _apply(ctx, customer, p)
    ctx.emit("customer.created", customer)
    return customer


def get_live(ctx: Ctx, customer_id: str, param: str = "id") -> Obj:
    """A customer that is not deleted. Named by the URL it is a 404; named by a body parameter, a 400."""
    customer = ctx.get(customer_id, "customer")
    if customer is None or customer["_local"].get("deleted"):
        raise missing("customer", customer_id, param=param, status=404 if param == "id" else 400)
    return customer


def retrieve(ctx: Ctx, p: Obj, customer: str) -> Obj:
    obj = ctx.get(customer, "customer")
    if obj is None:
        raise missing("customer", customer, param="id")
    return obj  # a deleted customer renders as {"id", "object", "deleted": true}, like Stripe


def update(ctx: Ctx, p: Obj, customer: str) -> Obj:
    obj = get_live(ctx, customer)
    before = public(obj)
    _apply(ctx, obj, p)
    ctx.put(obj)
    changes = diff(before, obj)
    if changes:
        ctx.emit("customer.updated", obj, changes)
    return obj


def delete(ctx: Ctx, p: Obj, customer: str) -> Obj:
    obj = get_live(ctx, customer)
    ctx.emit("customer.deleted", obj)
    obj["_local"] = {**obj["_local"], "deleted": True, "hidden": True}
    return ctx.put(obj)


def list_all(ctx: Ctx, p: Obj) -> ListPage:
    filters = {"$.email": p["email"]} if p.get("email") else {}
    return paginate(ctx, "customer", p, "/v1/customers", filters, "customer")
