"""Charges: created by PaymentIntents; the legacy create path only refuses, as Stripe now does."""

from __future__ import annotations

import random

from .. import ids
from ..cards import Decline
from ..core import Ctx, ListPage, Obj, blank_to_none, diff, merge_metadata, paginate, public
from ..errors import StripeError, invalid, missing
from ..params import EXPAND, LIST_PARAMS, Int, Meta, Str

CREATE = {
    "amount": Int(),
    "currency": Str(),
    "customer": Str(),
    "source": Str(),
    "payment_method": Str(),
    "description": Str(),
    "metadata": Meta(),
    "capture": Str(),
    "expand": EXPAND,
}
UPDATE = {
    "description": Str(),
    "metadata": Meta(),
    "receipt_email": Str(),
    "transfer_group": Str(),
    "expand": EXPAND,
}
RETRIEVE = {"expand": EXPAND}
CAPTURE = {"amount": Int(), "expand": EXPAND}
LIST = {**LIST_PARAMS, "customer": Str(), "payment_intent": Str()}

_rng = random.Random()


def new_charge(ctx: Ctx, pi: Obj, pm: Obj, decline: Decline | None) -> Obj:
    card = pm["card"]
    succeeded = decline is None
    captured = succeeded and pi["capture_method"] != "manual"
    amount = pi["amount"]
    details: Obj = {
        "amount_authorized": amount if succeeded else None,
        "authorization_code": ids.digits(6),
        "brand": card["brand"],
    }
    if succeeded and not captured:
        details["capture_before"] = ctx.now + 7 * 24 * 3600  # authorizations last seven days
    details.update(
        {
            "checks": dict(card["checks"]),
            "country": card["country"],
            "electronic_commerce_indicator": "07",
            "exp_month": card["exp_month"],
            "exp_year": card["exp_year"],
            "extended_authorization": {"status": "disabled"},
            "fingerprint": card["fingerprint"],
            "funding": card["funding"],
            "incremental_authorization": {"status": "unavailable"},
            "installments": None,
            "last4": card["last4"],
            "mandate": None,
            "multicapture": {"status": "unavailable"},
            "network": card["brand"],
            "network_token": {"used": False},
            "network_transaction_id": ids.digits(15),
            "overcapture": {"maximum_amount_capturable": amount, "status": "unavailable"},
            "regulated_status": "unregulated",
            "three_d_secure": None,
            "transaction_link_id": None,
            "wallet": None,
        }
    )
    if decline is None:
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": _rng.randint(0, 64),
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    else:
        outcome = {
            "advice_code": decline.advice_code,
            "network_advice_code": decline.network_advice_code,
            "network_decline_code": decline.network_decline_code,
            "network_status": "declined_by_network",
            "reason": decline.decline_code,
            "risk_level": "normal",
            "risk_score": _rng.randint(0, 64),
            "seller_message": decline.seller_message,
            "type": "issuer_declined",
        }
    charge: Obj = {
        "id": ids.new_id("ch", lead="3"),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if captured else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        # Stripe books automatic_async balance transactions a moment later; here it is immediate.
        "balance_transaction": ids.new_id("txn", lead="3") if captured else None,
        "billing_details": pm["billing_details"],
        "calculated_statement_descriptor": "Stripe",
        "captured": captured,
        "created": ctx.now,
        "currency": pi["currency"],
        "customer": pi["customer"],
        "description": pi["description"],
        "destination": None,
        "dispute": None,
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": decline.code if decline else None,
        "failure_message": decline.message if decline else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(pi["metadata"]),
        "on_behalf_of": None,
        "order": None,
        "outcome": outcome,
        "paid": succeeded,
        "payment_intent": pi["id"],
        "payment_method": pm["id"],
        "payment_method_details": {"card": details, "type": "card"},
        "radar_options": {},
        "receipt_email": pi["receipt_email"],
        "receipt_number": None,
        "receipt_url": f"https://pay.stripe.com/receipts/payment/{ids.token(40)}" if succeeded else None,
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": pi["statement_descriptor"],
        "statement_descriptor_suffix": pi["statement_descriptor_suffix"],
        "status": "succeeded" if succeeded else "failed",
        "transfer_data": None,
        "transfer_group": pi["transfer_group"],
        "_local": {"refunds": []},
    }
    return ctx.put(charge)


def capture(ctx: Ctx, charge: Obj, amount: int) -> None:
    charge.update(amount_captured=amount, captured=True, balance_transaction=ids.new_id("txn", lead="3"))
    ctx.put(charge)
    ctx.emit("charge.captured", charge)


def release(ctx: Ctx, charge: Obj) -> None:
    """Canceling an authorized PaymentIntent releases the hold: the charge shows as refunded."""
    charge.update(amount_refunded=charge["amount"], refunded=True)
    ctx.put(charge)
    ctx.emit("charge.refunded", charge)


def get(ctx: Ctx, charge_id: str) -> Obj:
    charge = ctx.get(charge_id, "charge")
    if charge is None:
        raise missing("charge", charge_id, param="id")
    return charge


def retrieve(ctx: Ctx, p: Obj, charge: str) -> Obj:
    return get(ctx, charge)


def update(ctx: Ctx, p: Obj, charge: str) -> Obj:
    obj = get(ctx, charge)
    if "transfer_group" in p and obj["payment_intent"]:
        raise invalid(
            f"This Charge was created by a PaymentIntent ({obj['payment_intent']}). You must update the "
            "`transfer_group` on the PaymentIntent instead of updating the Charge directly. See "
            "https://stripe.com/docs/api#update_payment_intent"
        )
    before = public(obj)
    for key in ("description", "receipt_email", "transfer_group"):
        if key in p:
            obj[key] = blank_to_none(p[key])
    if "metadata" in p:
        obj["metadata"] = merge_metadata(obj["metadata"], p["metadata"])
    ctx.put(obj)
    changes = diff(before, obj)
    if changes:
        ctx.emit("charge.updated", obj, changes)
    return obj


def create(ctx: Ctx, p: Obj) -> Obj:
    """Card charges without a PaymentIntent are refused exactly as the recordings show."""
    if p.get("source"):
        raise invalid(
            "Card Token usage on the Customers API and Charges API has reached end of life. In order to continue "
            "processing your payments, you will need to use the Payment Intents and Payment Methods API. Read more "
            "about what you should do here: https://docs.stripe.com/payments/payment-methods/integration-options. "
            "If you need to continue to use Card Tokens on the Customers and Charges API, enable this functionality "
            "in your API policies settings: https://dashboard.stripe.com/settings/developers/api-policies"
        )
    if not p.get("customer"):
        raise StripeError(400, "Must provide source or customer.", code="parameter_missing")
    customer = ctx.get(p["customer"], "customer")
    if customer is None or customer["_local"].get("deleted"):
        raise missing("customer", p["customer"], param="customer", status=400)
    has_pm = bool(
        ctx.db.page_objects("payment_method", {"customer": customer["id"]}, after_seq=None, before_seq=None, limit=1)
    )
    if has_pm:
        message = (
            "This Customer doesn't have any legacy saved payment details, but does have a Payment Method "
            "attached. Use a Payment Intent instead of creating a Charge: "
            "https://stripe.com/docs/payments/payment-intents/migration"
        )
    else:
        message = (
            "This Customer doesn't have any saved payment details. Attach a legacy Token, Card, Bank "
            "Account, or Source to this Customer and then try this request again, or use Payment Intents "
            "and Payment Methods instead."
        )
    raise StripeError(402, message, type="card_error", code="missing", param="card")


def capture_route(ctx: Ctx, p: Obj, charge: str) -> Obj:
    obj = get(ctx, charge)
    if obj["captured"]:
        raise invalid(f"Charge {obj['id']} has already been captured.", code="charge_already_captured")
    from . import payment_intents  # a charge of a PaymentIntent is captured through its intent

    params = {"amount_to_capture": p["amount"]} if "amount" in p else {}
    payment_intents.capture(ctx, params, obj["payment_intent"])
    return obj


def list_all(ctx: Ctx, p: Obj) -> ListPage:
    filters = {k: p[k] for k in ("customer", "payment_intent") if p.get(k)}
    return paginate(ctx, "charge", p, "/v1/charges", filters, "charge")


def payment_method_of(ctx: Ctx, charge: Obj) -> Obj | None:
    return ctx.get(charge["payment_method"], "payment_method")
