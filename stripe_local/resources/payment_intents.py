"""PaymentIntents: create, confirm (on and off session), manual capture, cancel, update.

State refusals carry the messages recorded from the real API (stripe_world cassette 04).
"""

from __future__ import annotations

from .. import ids
from ..core import (
    MINIMUM_CHARGE,
    Ctx,
    ListPage,
    Obj,
    blank_to_none,
    check_currency,
    format_amount,
    merge_metadata,
    method_types,
    paginate,
    public,
)
from ..errors import StripeError, missing
from ..params import EXPAND, LIST_PARAMS, Arr, Bool, BoolOrEnum, Enum, Int, Meta, Str
from ..params import Obj as ObjSpec
from . import charges, confirmation, customers, payment_methods
from .confirmation import check_owner, state_error

# The account's default payment method configuration (ids differ per account; shape matters).
PMC_ID = "pmc_1LocalStripeDefaultPmc0"
CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action", "processing")
EDITABLE = ("requires_payment_method", "requires_confirmation", "requires_action")

_CARD_OPTIONS = ObjSpec(
    {
        "request_three_d_secure": Enum("any", "automatic", "challenge"),
        "setup_future_usage": Enum("none", "off_session", "on_session"),
    }
)
_COMMON = {
    "description": Str(),
    "metadata": Meta(),
    "receipt_email": Str(),
    "setup_future_usage": Enum("off_session", "on_session"),
    "statement_descriptor": Str(max_length=22),
    "statement_descriptor_suffix": Str(max_length=22),
    "transfer_group": Str(),
    "capture_method": Enum("automatic", "automatic_async", "manual"),
    "payment_method": Str(),
    "payment_method_types": Arr(Str()),
    "allowed_payment_method_types": Arr(Str()),
    "excluded_payment_method_types": Arr(Str()),
    "payment_method_options": ObjSpec({"card": _CARD_OPTIONS}),
    "expand": EXPAND,
}
_CONFIRM_ONLY = {
    "off_session": BoolOrEnum("one_off", "recurring"),
    "return_url": Str(),
    "error_on_requires_action": Bool(),
    "use_stripe_sdk": Bool(),
}
CREATE = {
    **_COMMON,
    **_CONFIRM_ONLY,
    "amount": Int(required=True),
    "currency": Str(required=True),
    "customer": Str(),
    "confirm": Bool(),
    "confirmation_method": Enum("automatic", "manual"),
    "automatic_payment_methods": ObjSpec({"enabled": Bool(required=True), "allow_redirects": Enum("always", "never")}),
}
UPDATE = {**_COMMON, "amount": Int(), "currency": Str(), "customer": Str()}
CONFIRM = {
    **_CONFIRM_ONLY,
    "payment_method": Str(),
    "receipt_email": Str(),
    "setup_future_usage": Enum("off_session", "on_session"),
    "capture_method": Enum("automatic", "automatic_async", "manual"),
    "payment_method_options": ObjSpec({"card": _CARD_OPTIONS}),
    "expand": EXPAND,
}
CAPTURE = {
    "amount_to_capture": Int(),
    "metadata": Meta(),
    "statement_descriptor": Str(max_length=22),
    "statement_descriptor_suffix": Str(max_length=22),
    "final_capture": Bool(),
    "expand": EXPAND,
}
CANCEL = {
    "cancellation_reason": Enum("duplicate", "fraudulent", "requested_by_customer", "abandoned"),
    "expand": EXPAND,
}
RETRIEVE = {"expand": EXPAND, "client_secret": Str()}
LIST = {**LIST_PARAMS, "customer": Str()}


def _check_amount(amount: int, currency: str) -> None:
    if amount < 1:
        raise StripeError(
            400,
            "The amount must be greater than or equal to the minimum charge amount allowed for your account and "
            "the currency set (https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts).  If you "
            "want to save a Payment Method for future use without an immediate payment, use a Setup Intent "
            "instead: https://docs.stripe.com/payments/setup-intents",
            param="amount",
            code="parameter_invalid_integer",
        )
    minimum = MINIMUM_CHARGE.get(currency, 50)
    if amount < minimum:
        raise StripeError(
            400,
            f"Amount must be at least {format_amount(minimum, currency)} {currency}",
            param="amount",
            code="amount_too_small",
        )
    if amount > 99_999_999:
        raise StripeError(
            400,
            f"Amount must be no more than {format_amount(99_999_999, currency)}",
            param="amount",
            code="amount_too_large",
        )


def _card_options(types: list[str], options: Obj | None) -> Obj:
    card = (options or {}).get("card") or {}
    out: Obj = {
        "card": {
            "installments": None,
            "mandate_options": None,
            "network": None,
            "request_three_d_secure": card.get("request_three_d_secure") or "automatic",
        }
    }
    if "link" in types:
        out["link"] = {"persistent_token": None}
    return out


def create(ctx: Ctx, p: Obj) -> Obj:
    currency = check_currency(p["currency"])
    _check_amount(p["amount"], currency)
    customer_id = None
    if p.get("customer"):
        customer_id = customers.get_live(ctx, p["customer"], param="customer")["id"]
    pm = payment_methods.resolve(ctx, p["payment_method"]) if p.get("payment_method") else None
    if pm is not None:
        check_owner(customer_id, pm)
    # Recorded: without pinned types the account's dashboard methods (card, link) apply.
    types, apm, pmc, allowed, excluded = method_types(p, ["card", "link"], PMC_ID)
    pi_id = ids.new_id("pi", lead="3")
    pi: Obj = {
        "id": pi_id,
        "object": "payment_intent",
        "allowed_payment_method_types": allowed,
        "amount": p["amount"],
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": apm,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": p.get("capture_method") or "automatic_async",
        "client_secret": f"{pi_id}_secret_{ids.token(25)}",
        "confirmation_method": p.get("confirmation_method") or "automatic",
        "created": ctx.now,
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "description": blank_to_none(p.get("description")),
        "excluded_payment_method_types": excluded,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": p.get("metadata") or {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": pm["id"] if pm else None,
        "payment_method_configuration_details": pmc,
        "payment_method_options": _card_options(types, p.get("payment_method_options")),
        "payment_method_types": types,
        "payment_record": None,
        "processing": None,
        "receipt_email": blank_to_none(p.get("receipt_email")),
        "review": None,
        "setup_future_usage": p.get("setup_future_usage"),
        "shared_payment_granted_token": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": blank_to_none(p.get("statement_descriptor")),
        "statement_descriptor_suffix": blank_to_none(p.get("statement_descriptor_suffix")),
        "status": "requires_confirmation" if pm else "requires_payment_method",
        "transfer_data": None,
        "transfer_group": blank_to_none(p.get("transfer_group")),
        "_local": {"charges": []},
    }
    ctx.put(pi)
    ctx.emit("payment_intent.created", pi)
    if p.get("confirm"):
        return confirmation.confirm(ctx, pi, p)
    return pi


def _get(ctx: Ctx, intent: str) -> Obj:
    pi = ctx.get(intent, "payment_intent")
    if pi is None:
        raise missing("payment_intent", intent, param="intent")
    return pi


def retrieve(ctx: Ctx, p: Obj, intent: str) -> Obj:
    return _get(ctx, intent)


def confirm(ctx: Ctx, p: Obj, intent: str) -> Obj:
    return confirmation.confirm(ctx, _get(ctx, intent), p)


def capture(ctx: Ctx, p: Obj, intent: str) -> Obj:
    pi = _get(ctx, intent)
    status = pi["status"]
    if status != "requires_capture":
        if status == "succeeded" and pi["capture_method"] == "manual" and pi["amount_received"] < pi["amount"]:
            message = (
                "The remaining amount on this PaymentIntent could not be captured because the remainder of "
                "the authorized amount has been released."
            )
        else:
            message = (
                f"This PaymentIntent could not be captured because it has a status of {status}. Only a "
                "PaymentIntent with one of the following statuses may be captured: requires_capture."
            )
        raise state_error(pi, message)
    amount: int = p["amount_to_capture"] if "amount_to_capture" in p else pi["amount_capturable"]
    extra = {"payment_intent": public(pi)}
    if amount < 0:
        raise StripeError(400, "Invalid non-negative integer", param="amount_to_capture", extra=extra)
    if amount == 0:
        raise StripeError(
            400,
            "This value must be greater than or equal to 1.",
            param="amount",
            code="parameter_invalid_integer",
            extra=extra,
        )
    if amount > pi["amount_capturable"]:
        raise StripeError(
            400,
            (
                "The payment could not be captured because the requested capture amount is greater than the amount "
                "you can capture for this charge. Contact us via https://support.stripe.com/contact/ for help."
            ),
            code="amount_too_large",
            extra=extra,
        )
    if "metadata" in p:
        pi["metadata"] = merge_metadata(pi["metadata"], p["metadata"])
    for key in ("statement_descriptor", "statement_descriptor_suffix"):
        if key in p:
            pi[key] = blank_to_none(p[key])
    charge = ctx.get(pi["latest_charge"], "charge")
    assert charge is not None
    charges.capture(ctx, charge, amount)
    pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
    ctx.put(pi)
    ctx.emit("payment_intent.succeeded", pi)
    return pi


def cancel(ctx: Ctx, p: Obj, intent: str) -> Obj:
    pi = _get(ctx, intent)
    status = pi["status"]
    if status not in CANCELABLE:
        raise state_error(
            pi,
            (
                f"You cannot cancel this PaymentIntent because it has a status of {status}. Only a PaymentIntent with "
                "one of the following statuses may be canceled: requires_payment_method, requires_capture, "
                "requires_reauthorization, requires_confirmation, requires_action, expired, processing."
            ),
        )
    pi.update(
        status="canceled",
        canceled_at=ctx.now,
        cancellation_reason=p.get("cancellation_reason"),
        amount_capturable=0,
        next_action=None,
    )
    ctx.put(pi)
    if status == "requires_capture":
        charge = ctx.get(pi["latest_charge"], "charge")
        if charge is not None:
            charges.release(ctx, charge)
    ctx.emit("payment_intent.canceled", pi)
    return pi


def update(ctx: Ctx, p: Obj, intent: str) -> Obj:
    pi = _get(ctx, intent)
    status = pi["status"]
    for key in (
        "amount",
        "currency",
        "customer",
        "payment_method",
        "payment_method_types",
        "allowed_payment_method_types",
    ):
        if key in p and status not in EDITABLE:
            raise state_error(
                pi,
                (
                    f"This PaymentIntent's {key} could not be updated because it has a status of {status}. You may "
                    f"only update the {key} of a PaymentIntent with one of the following statuses: "
                    "requires_payment_method, requires_confirmation, requires_action."
                ),
                param=key,
            )
    currency = check_currency(p["currency"]) if "currency" in p else pi["currency"]
    if "amount" in p or "currency" in p:
        _check_amount(p["amount"] if "amount" in p else pi["amount"], currency)
    customer_id = pi["customer"]
    if p.get("customer"):
        customer_id = customers.get_live(ctx, p["customer"], param="customer")["id"]
    pm = None
    if p.get("payment_method"):
        pm = payment_methods.resolve(ctx, p["payment_method"])
        check_owner(customer_id, pm, pi)
    pi.update(currency=currency, customer=customer_id, amount=p.get("amount", pi["amount"]))
    if pm is not None:
        pi["payment_method"] = pm["id"]
        if status == "requires_payment_method":
            pi["status"] = "requires_confirmation"
    if p.get("payment_method_types") or p.get("allowed_payment_method_types"):
        types, apm, pmc, allowed, _ = method_types(p, [], PMC_ID)
        pi.update(
            payment_method_types=types,
            automatic_payment_methods=apm,
            payment_method_configuration_details=pmc,
            allowed_payment_method_types=allowed,
            payment_method_options=_card_options(types, p.get("payment_method_options")),
        )
    if "metadata" in p:
        pi["metadata"] = merge_metadata(pi["metadata"], p["metadata"])
    for key in (
        "description",
        "receipt_email",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "transfer_group",
    ):
        if key in p:
            pi[key] = blank_to_none(p[key])
    for key in ("setup_future_usage", "capture_method"):
        if key in p:
            pi[key] = p[key]
    return ctx.put(pi)


def list_all(ctx: Ctx, p: Obj) -> ListPage:
    filters = {"customer": p["customer"]} if p.get("customer") else {}
    return paginate(ctx, "payment_intent", p, "/v1/payment_intents", filters, "payment_intent")
