"""PaymentMethods: created from test tokens or card numbers, attached to and detached from customers."""

from __future__ import annotations

import time
from typing import Any

from .. import cards, ids
from ..cards import CardProfile, Decline
from ..core import Ctx, ListPage, Obj, diff, merge_metadata, paginate, public
from ..errors import StripeError, invalid, missing
from ..params import ADDRESS, EXPAND, LIST_PARAMS, Enum, Int, Meta, Str
from ..params import Obj as ObjSpec

# PaymentMethod types other than card that need no details at creation (recorded: klarna).
DETAILLESS_TYPES = ("klarna", "link", "bancontact", "pix", "satispay")

BILLING_DETAILS = ObjSpec({"address": ADDRESS, "email": Str(), "name": Str(), "phone": Str()})
CARD = ObjSpec({"token": Str(), "number": Str(), "exp_month": Int(), "exp_year": Int(), "cvc": Str()})

CREATE = {
    "type": Enum("card", *DETAILLESS_TYPES, required=True),
    "card": CARD,
    "billing_details": BILLING_DETAILS,
    "metadata": Meta(),
    "allow_redisplay": Enum("always", "limited", "unspecified"),
    "expand": EXPAND,
    **{t: ObjSpec({}) for t in DETAILLESS_TYPES},
}
UPDATE = {
    "billing_details": BILLING_DETAILS,
    "metadata": Meta(),
    "allow_redisplay": Enum("always", "limited", "unspecified"),
    "card": ObjSpec({"exp_month": Int(), "exp_year": Int()}),
    "expand": EXPAND,
}
ATTACH = {"customer": Str(required=True), "expand": EXPAND}
DETACH = {"expand": EXPAND}
RETRIEVE = {"expand": EXPAND}
LIST = {**LIST_PARAMS, "customer": Str(), "type": Str(), "allow_redisplay": Enum("always", "limited", "unspecified")}


def _billing_details(value: Obj | None, current: Obj | None = None) -> Obj:
    address = dict(
        (current or {}).get("address") or dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))
    )
    base = dict(current or {"email": None, "name": None, "phone": None, "tax_id": None})
    if value:
        for key, item in value.items():
            if key == "address":
                address.update({k: (v or None) for k, v in (item or {}).items()})
            else:
                base[key] = item or None
    return {"address": address, **{k: base.get(k) for k in ("email", "name", "phone", "tax_id")}}


def _card_hash(card: CardProfile, exp_month: int, exp_year: int) -> Obj:
    display = "american_express" if card.brand == "amex" else card.brand
    return {
        "brand": card.brand,
        "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "unchecked"},
        "country": card.country,
        "display_brand": display,
        "exp_month": exp_month,
        "exp_year": exp_year,
        "fingerprint": cards.fingerprint(card.number),
        "funding": card.funding,
        "generated_from": None,
        "last4": card.last4,
        "networks": {"available": [card.brand], "preferred": None},
        "regulated_status": "unregulated",
        "three_d_secure_usage": {"supported": True},
        "wallet": None,
    }


def new_payment_method(
    ctx: Ctx,
    pm_type: str,
    *,
    number: str | None = None,
    exp: tuple[int, int] | None = None,
    billing_details: Obj | None = None,
    metadata: Obj | None = None,
    allow_redisplay: str | None = None,
) -> Obj:
    pm: Obj = {
        "id": ids.new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": allow_redisplay or "unspecified",
        "billing_details": _billing_details(billing_details),
    }
    if pm_type == "card":
        assert number is not None
        if exp is None:
            # Test tokens carry an expiry one year ahead (recorded: 9/2027 for a 2026-09 run).
            today = time.gmtime(ctx.now)
            exp = (today.tm_mon, today.tm_year + 1)
        pm["card"] = _card_hash(cards.card_for_number(number), exp[0], exp[1])
    pm.update({"created": ctx.now, "customer": None, "customer_account": None})
    if pm_type != "card":
        pm[pm_type] = {}
    pm.update(
        {
            "livemode": False,
            "metadata": metadata or {},
            "shared_payment_granted_token": None,
            "type": pm_type,
            "_local": {"number": number},
        }
    )
    return ctx.put(pm)


def profile(pm: Obj) -> CardProfile | None:
    number = pm.get("_local", {}).get("number")
    return cards.card_for_number(number) if number else None


def resolve(ctx: Ctx, value: Any, param: str = "payment_method") -> Obj:
    """A PaymentMethod id, or a ``pm_card_*`` test token that makes a fresh one like Stripe does."""
    number = cards.PM_TOKENS.get(value)
    if number is not None:
        return new_payment_method(ctx, "card", number=number)
    pm = ctx.get(value, "payment_method")
    if pm is None:
        raise missing("PaymentMethod", str(value), param=param, status=400)
    return pm


def decline_fields(decline: Decline) -> Obj:
    fields = {
        "advice_code": decline.advice_code,
        "code": decline.code,
        "decline_code": decline.decline_code,
        "message": decline.message,
        "network_advice_code": decline.network_advice_code,
        "network_decline_code": decline.network_decline_code,
        "param": decline.param,
    }
    return {k: v for k, v in fields.items() if v is not None}


def decline_error(decline: Decline, *, param: str | None = None, **extra: Any) -> StripeError:
    fields = decline_fields(decline)
    message = fields.pop("message")
    code = fields.pop("code")
    param = fields.pop("param", param)
    return StripeError(402, message, type="card_error", code=code, param=param, extra={**fields, **extra})


def mark_checked(pm: Obj) -> bool:
    """Attaching or charging runs a CVC check: ``unchecked`` becomes ``pass`` (recorded).
    Returns whether the method changed (so an unchanged one is not written again)."""
    if "card" not in pm or pm["card"]["checks"]["cvc_check"] == "pass":
        return False
    pm["card"] = {**pm["card"], "checks": {**pm["card"]["checks"], "cvc_check": "pass"}}
    return True


def attach(ctx: Ctx, pm: Obj, customer: Obj) -> Obj:
    if pm["customer"] == customer["id"]:
        return pm
    if pm["customer"] is not None:
        raise invalid("The payment method you provided has already been attached to a customer.")
    card = profile(pm)
    if card is not None and card.decline is not None and not card.attach_ok:
        # Recorded: a declining card fails at attach with a 402 and ``param: ""``.
        raise decline_error(card.decline, param=card.decline.param or "")
    mark_checked(pm)
    pm["customer"] = customer["id"]
    ctx.put(pm)
    ctx.emit("payment_method.attached", pm)
    return pm


def create(ctx: Ctx, p: Obj) -> Obj:
    pm_type = p["type"]
    if pm_type != "card":
        return new_payment_method(
            ctx,
            pm_type,
            billing_details=p.get("billing_details"),
            metadata=p.get("metadata"),
            allow_redisplay=p.get("allow_redisplay"),
        )
    card = p.get("card")
    if not card:
        raise StripeError(400, "Missing required param: card.", param="card", code="parameter_missing")
    if "token" in card:
        number = cards.TOKENS.get(card["token"])
        if number is None:
            raise missing("token", card["token"], param="card[token]", status=400)
        exp = None
    else:
        # Real Stripe refuses raw card numbers unless the account has raw-card-data access;
        # here they are accepted so the refund test cards (4000000000007726...) can be used.
        number = (card.get("number") or "").replace(" ", "")
        for name in ("number", "exp_month", "exp_year"):
            if card.get(name) in (None, ""):
                raise StripeError(
                    400, f"Missing required param: card[{name}].", param=f"card[{name}]", code="parameter_missing"
                )
        if not cards.luhn_ok(number):
            raise StripeError(
                402, "Your card number is incorrect.", type="card_error", code="incorrect_number", param="number"
            )
        exp = (card["exp_month"], card["exp_year"])
        _check_expiry(ctx, *exp)
    return new_payment_method(
        ctx,
        "card",
        number=number,
        exp=exp,
        billing_details=p.get("billing_details"),
        metadata=p.get("metadata"),
        allow_redisplay=p.get("allow_redisplay"),
    )


def _check_expiry(ctx: Ctx, month: int, year: int) -> None:
    if not 1 <= month <= 12:
        raise StripeError(
            402,
            "Your card's expiration month is invalid.",
            type="card_error",
            code="invalid_expiry_month",
            param="exp_month",
        )
    if year < 100:
        year += 2000
    today = time.gmtime(ctx.now)
    if (year, month) < (today.tm_year, today.tm_mon) or year > today.tm_year + 50:
        raise StripeError(
            402,
            "Your card's expiration year is invalid.",
            type="card_error",
            code="invalid_expiry_year",
            param="exp_year",
        )


def _get(ctx: Ctx, pm_id: str) -> Obj:
    pm = ctx.get(pm_id, "payment_method")
    if pm is None:
        raise missing("PaymentMethod", pm_id, param="payment_method")
    return pm


def retrieve(ctx: Ctx, p: Obj, payment_method: str) -> Obj:
    return _get(ctx, payment_method)


def update(ctx: Ctx, p: Obj, payment_method: str) -> Obj:
    pm = _get(ctx, payment_method)
    if pm["customer"] is None:
        raise invalid("You must save this PaymentMethod to a customer before you can update it.")
    before = public(pm)
    if "billing_details" in p:
        pm["billing_details"] = _billing_details(p["billing_details"], pm["billing_details"])
    if "metadata" in p:
        pm["metadata"] = merge_metadata(pm["metadata"], p["metadata"])
    if p.get("allow_redisplay"):
        pm["allow_redisplay"] = p["allow_redisplay"]
    if p.get("card") and "card" in pm:
        new = {k: v for k, v in p["card"].items() if v is not None}
        _check_expiry(ctx, new.get("exp_month", pm["card"]["exp_month"]), new.get("exp_year", pm["card"]["exp_year"]))
        pm["card"] = {**pm["card"], **new}
    changes = diff(before, pm)
    ctx.put(pm)
    if changes:
        ctx.emit("payment_method.updated", pm, changes)
    return pm


def attach_route(ctx: Ctx, p: Obj, payment_method: str) -> Obj:
    customer = ctx.get(p["customer"], "customer")
    if customer is None or customer["_local"].get("deleted"):
        raise missing("customer", p["customer"], param="customer", status=400)
    if payment_method in cards.PM_TOKENS:
        pm = resolve(ctx, payment_method)
    else:
        pm = _get(ctx, payment_method)
    return attach(ctx, pm, customer)


def detach(ctx: Ctx, p: Obj, payment_method: str) -> Obj:
    pm = _get(ctx, payment_method)
    customer_id = pm["customer"]
    if customer_id is None:
        raise invalid("The payment method you provided is not attached to a customer so detachment is impossible.")
    pm["customer"] = None
    ctx.put(pm)
    customer = ctx.get(customer_id, "customer")
    if customer is not None and customer["invoice_settings"]["default_payment_method"] == pm["id"]:
        before = public(customer)
        customer["invoice_settings"] = {**customer["invoice_settings"], "default_payment_method": None}
        ctx.put(customer)
        ctx.emit("customer.updated", customer, diff(before, customer))
    ctx.emit("payment_method.detached", pm, {"customer": customer_id})
    return pm


def _customer_filters(p: Obj) -> dict[str, str]:
    filters = {}
    if p.get("type"):
        filters["$.type"] = p["type"]
    if p.get("allow_redisplay"):
        filters["$.allow_redisplay"] = p["allow_redisplay"]
    return filters


def list_all(ctx: Ctx, p: Obj) -> ListPage:
    url = "/v1/payment_methods"
    if not p.get("customer"):
        # Recorded: without ``customer`` the list is empty even when unattached methods exist.
        return ListPage([], False, url)
    customer = ctx.get(p["customer"], "customer")
    if customer is None or customer["_local"].get("deleted"):
        raise missing("customer", p["customer"], param="customer", status=400)
    filters = {"customer": customer["id"], **_customer_filters(p)}
    return paginate(ctx, "payment_method", p, url, filters, "payment_method")


def list_for_customer(ctx: Ctx, p: Obj, customer: str) -> ListPage:
    cus = ctx.get(customer, "customer")
    if cus is None or cus["_local"].get("deleted"):
        raise missing("customer", customer, param="id")
    filters = {"customer": customer, **_customer_filters(p)}
    return paginate(ctx, "payment_method", p, f"/v1/customers/{customer}/payment_methods", filters, "payment_method")


def retrieve_for_customer(ctx: Ctx, p: Obj, customer: str, payment_method: str) -> Obj:
    cus = ctx.get(customer, "customer")
    if cus is None or cus["_local"].get("deleted"):
        raise missing("customer", customer, param="id")
    pm = ctx.get(payment_method, "payment_method")
    if pm is None or pm["customer"] != customer:
        # Recorded: a method that is not the customer's is a bare 404 "Invalid request".
        raise StripeError(404, "Invalid request", param="customer")
    return pm
