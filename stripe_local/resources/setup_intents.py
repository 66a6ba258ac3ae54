"""SetupIntents: save a card for later (``usage=off_session``) with Stripe's checks and refusals.

Messages follow the recorded real API (stripe_world cassette 10_setup_intents).
"""

from __future__ import annotations

from .. import ids
from ..core import Ctx, ListPage, Obj, blank_to_none, merge_metadata, method_types, paginate, public
from ..errors import StripeError, missing, unexpected_state
from ..params import EXPAND, LIST_PARAMS, Arr, Bool, Enum, Meta, Str
from ..params import Obj as ObjSpec
from . import customers, payment_methods

PMC_ID = "pmc_1LocalStripeDefaultPmc0"
# Recorded: the account's dashboard configuration when no payment_method_types are given.
DASHBOARD_TYPES = ["card", "bancontact", "klarna", "link", "pix", "satispay"]

_FIELDS = {
    "customer": Str(),
    "description": Str(),
    "metadata": Meta(),
    "payment_method": Str(),
    "payment_method_types": Arr(Str()),
    "allowed_payment_method_types": Arr(Str()),
    "excluded_payment_method_types": Arr(Str()),
    "expand": EXPAND,
}
CREATE = {
    **_FIELDS,
    "usage": Enum("on_session", "off_session"),
    "confirm": Bool(),
    "return_url": Str(),
    "automatic_payment_methods": ObjSpec({"enabled": Bool(required=True), "allow_redirects": Enum("always", "never")}),
}
UPDATE = _FIELDS
CONFIRM = {"payment_method": Str(), "return_url": Str(), "use_stripe_sdk": Bool(), "expand": EXPAND}
CANCEL = {"cancellation_reason": Enum("abandoned", "requested_by_customer", "duplicate"), "expand": EXPAND}
VERIFY = {"amounts": Arr(Str()), "descriptor_code": Str(), "expand": EXPAND}
RETRIEVE = {"expand": EXPAND, "client_secret": Str()}
LIST = {**LIST_PARAMS, "customer": Str(), "payment_method": Str()}


def _error(si: Obj, message: str, code: str = "setup_intent_unexpected_state") -> StripeError:
    return unexpected_state(message, code=code, setup_intent=public(si))


def _check_owner(customer_id: str | None, pm: Obj, si: Obj | None) -> None:
    owner = pm["customer"]
    if owner is None or owner == customer_id:
        return
    extra = {"setup_intent": public(si)} if si is not None else {}
    if customer_id is None:
        message = (
            f"The payment method supplied ({pm['id']}) belongs to the Customer {owner}. Please include the "
            "Customer in the `customer` parameter on the SetupIntent."
        )
    else:
        message = (
            f"The PaymentMethod {pm['id']} does not belong to the Customer you supplied {customer_id}. "
            "Please use this PaymentMethod with the Customer that it belongs to instead."
        )
    raise StripeError(400, message, param="payment_method", extra=extra)


def create(ctx: Ctx, p: Obj) -> Obj:
    customer_id = customers.get_live(ctx, p["customer"], param="customer")["id"] if p.get("customer") else None
    pm = payment_methods.resolve(ctx, p["payment_method"]) if p.get("payment_method") else None
    if pm is not None:
        _check_owner(customer_id, pm, None)
    types, apm, pmc, allowed, excluded = method_types(p, DASHBOARD_TYPES, PMC_ID)
    si_id = ids.new_id("seti")
    si: Obj = {
        "id": si_id,
        "object": "setup_intent",
        "allowed_payment_method_types": allowed,
        "application": None,
        "automatic_payment_methods": apm,
        "cancellation_reason": None,
        "client_secret": f"{si_id}_secret_{ids.token(32)}",
        "created": ctx.now,
        "customer": customer_id,
        "customer_account": None,
        "description": blank_to_none(p.get("description")),
        "excluded_payment_method_types": excluded,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "mandate": None,
        "metadata": p.get("metadata") or {},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": pm["id"] if pm else None,
        "payment_method_configuration_details": pmc,
        "payment_method_options": {
            "card": {"mandate_options": None, "network": None, "request_three_d_secure": "automatic"}
        },
        "payment_method_types": types,
        "single_use_mandate": None,
        "status": "requires_confirmation" if pm else "requires_payment_method",
        "usage": p.get("usage") or "off_session",
    }
    ctx.put(si)
    ctx.emit("setup_intent.created", si)
    if p.get("confirm"):
        return _confirm(ctx, si, {k: p[k] for k in ("return_url",) if k in p})
    return si


def _get(ctx: Ctx, intent: str) -> Obj:
    si = ctx.get(intent, "setup_intent")
    if si is None:
        raise missing("setupintent", intent, param="intent")
    return si


def retrieve(ctx: Ctx, p: Obj, intent: str) -> Obj:
    return _get(ctx, intent)


def confirm(ctx: Ctx, p: Obj, intent: str) -> Obj:
    return _confirm(ctx, _get(ctx, intent), p)


def _confirm(ctx: Ctx, si: Obj, p: Obj) -> Obj:
    status = si["status"]
    if status == "succeeded":
        raise _error(si, "You cannot confirm this SetupIntent because it has already succeeded.")
    if status == "canceled":
        raise _error(si, "You cannot confirm this SetupIntent because it has been canceled.")
    if p.get("payment_method"):
        pm = payment_methods.resolve(ctx, p["payment_method"])
        _check_owner(si["customer"], pm, si)
    elif si["payment_method"]:
        saved = ctx.get(si["payment_method"], "payment_method")
        assert saved is not None
        pm = saved
    else:
        raise _error(
            si,
            (
                "You cannot confirm this SetupIntent because it's missing a payment method. You can either update the "
                "SetupIntent with a payment method and then confirm it again, or confirm it again directly with a "
                "payment method or ConfirmationToken."
            ),
        )
    si["payment_method"] = pm["id"]
    card = payment_methods.profile(pm)
    if card is None or card.requires_auth:
        return _require_action(ctx, si)
    return _set_up(ctx, si, pm)


def _require_action(ctx: Ctx, si: Obj) -> Obj:
    source = ids.new_id("src")
    si.update(
        status="requires_action",
        next_action={
            "type": "use_stripe_sdk",
            "use_stripe_sdk": {
                "source": source,
                "stripe_js": f"https://hooks.stripe.com/redirect/authenticate/{source}",
                "type": "three_d_secure_redirect",
            },
        },
    )
    ctx.put(si)
    ctx.emit("setup_intent.requires_action", si)
    return si


def _set_up(ctx: Ctx, si: Obj, pm: Obj) -> Obj:
    card = payment_methods.profile(pm)
    if payment_methods.mark_checked(pm):
        ctx.put(pm)
    si["latest_attempt"] = ids.new_id("setatt")
    si["next_action"] = None
    if card is not None and card.decline is not None and not card.attach_ok:
        fields = payment_methods.decline_fields(card.decline)
        si.update(
            status="requires_payment_method",
            payment_method=None,
            last_setup_error=dict(
                sorted(
                    {
                        **fields,
                        "doc_url": "https://stripe.com/docs/error-codes/" + card.decline.code.replace("_", "-"),
                        "payment_method": public(pm),
                        "type": "card_error",
                    }.items()
                )
            ),
        )
        ctx.put(si)
        ctx.emit("setup_intent.setup_failed", si)
        ctx.keep_on_error = True
        raise payment_methods.decline_error(card.decline, payment_method=public(pm), setup_intent=public(si))
    si.update(status="succeeded", last_setup_error=None)
    if si["customer"] and pm["customer"] is None:
        customer = ctx.get(si["customer"], "customer")
        if customer is not None:
            payment_methods.attach(ctx, pm, customer)
    ctx.put(si)
    ctx.emit("setup_intent.succeeded", si)
    return si


def complete_authentication(ctx: Ctx, si: Obj, succeed: bool) -> Obj:
    if si["status"] != "requires_action":
        raise _error(si, f"This SetupIntent has a status of {si['status']}, not requires_action.")
    pm = ctx.get(si["payment_method"], "payment_method")
    assert pm is not None
    if succeed:
        return _set_up(ctx, si, pm)
    si.update(
        status="requires_payment_method",
        payment_method=None,
        next_action=None,
        last_setup_error={
            "code": "setup_intent_authentication_failure",
            "doc_url": "https://stripe.com/docs/error-codes/setup-intent-authentication-failure",
            "message": "The latest attempt to set up the payment method has failed because authentication failed.",
            "payment_method": public(pm),
            "type": "invalid_request_error",
        },
    )
    ctx.put(si)
    ctx.emit("setup_intent.setup_failed", si)
    return si


def update(ctx: Ctx, p: Obj, intent: str) -> Obj:
    si = _get(ctx, intent)
    status = si["status"]
    restricted = [k for k in p if k not in ("description", "metadata", "expand")]
    if restricted and status == "succeeded":
        raise _error(si, "You cannot update this SetupIntent because it has already succeeded.")
    if restricted and status == "canceled":
        raise _error(si, "You cannot update this SetupIntent because it has been canceled.")
    customer_id = si["customer"]
    if p.get("customer"):
        customer_id = customers.get_live(ctx, p["customer"], param="customer")["id"]
    if p.get("payment_method"):
        pm = payment_methods.resolve(ctx, p["payment_method"])
        _check_owner(customer_id, pm, si)
        si["payment_method"] = pm["id"]
        if status == "requires_payment_method":
            si["status"] = "requires_confirmation"
    si["customer"] = customer_id
    if "description" in p:
        si["description"] = blank_to_none(p["description"])
    if "metadata" in p:
        si["metadata"] = merge_metadata(si["metadata"], p["metadata"])
    if p.get("payment_method_types") or p.get("allowed_payment_method_types"):
        types, apm, pmc, allowed, _ = method_types(p, [], PMC_ID)
        si.update(
            payment_method_types=types,
            automatic_payment_methods=apm,
            payment_method_configuration_details=pmc,
            allowed_payment_method_types=allowed,
        )
    return ctx.put(si)


def cancel(ctx: Ctx, p: Obj, intent: str) -> Obj:
    si = _get(ctx, intent)
    if si["status"] == "canceled":
        raise _error(si, "You cannot cancel this SetupIntent because it is already canceled.")
    if si["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise _error(
            si,
            (
                f"You cannot cancel this SetupIntent because it has a status of {si['status']}. Only a SetupIntent with "
                "one of the following statuses may be canceled: `requires_payment_method`, `requires_confirmation`, or "
                "`requires_action`."
            ),
        )
    si.update(status="canceled", cancellation_reason=p.get("cancellation_reason"), next_action=None)
    ctx.put(si)
    ctx.emit("setup_intent.canceled", si)
    return si


def verify_microdeposits(ctx: Ctx, p: Obj, intent: str) -> Obj:
    si = _get(ctx, intent)
    # Cards never wait for microdeposits, so every status is refused the way the recording shows.
    raise _error(
        si,
        (
            f"This SetupIntent cannot be actioned on because it has a status of {si['status']}. Only a SetupIntent "
            'with one of the following statuses may be actioned on: ["requires_action"].'
        ),
        code="intent_invalid_state",
    )


def list_all(ctx: Ctx, p: Obj) -> ListPage:
    filters = {k: p[k] for k in ("customer", "payment_method") if p.get(k)}
    return paginate(ctx, "setup_intent", p, "/v1/setup_intents", filters, "setup_intent")
