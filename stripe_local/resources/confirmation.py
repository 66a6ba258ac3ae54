"""Confirming a PaymentIntent: which card behaviour applies, the charge it makes, declines,
3-D Secure on and off session, and the customer's answer to a challenge."""

from __future__ import annotations

from .. import ids
from ..core import Ctx, Obj, public
from ..errors import StripeError, unexpected_state
from . import charges, payment_methods

CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")


def state_error(
    pi: Obj, message: str, *, param: str | None = None, code: str = "payment_intent_unexpected_state"
) -> StripeError:
    return unexpected_state(message, code=code, param=param, payment_intent=public(pi))


def check_owner(customer_id: str | None, pm: Obj, pi: Obj | None = None) -> None:
    owner = pm["customer"]
    if owner is None or owner == customer_id:
        return
    extra = {"payment_intent": public(pi)} if pi is not None else {}
    if customer_id is None:
        raise StripeError(
            400,
            f"The `payment_method` parameter supplied {pm['id']} belongs to the Customer {owner}. Please include "
            "the Customer in the `customer` parameter on the PaymentIntent.",
            param="source",
            code="parameter_missing",
            extra=extra,
        )
    raise StripeError(
        400,
        f"The PaymentMethod {pm['id']} does not belong to the Customer you supplied {customer_id}. Please use "
        "this PaymentMethod with the Customer that it belongs to instead.",
        param="payment_method",
        extra=extra,
    )


def confirm(ctx: Ctx, pi: Obj, p: Obj) -> Obj:
    status = pi["status"]
    if status not in CONFIRMABLE:
        if status == "succeeded":
            message = (
                "You cannot confirm this PaymentIntent because it has already succeeded after being "
                "previously confirmed."
            )
        else:
            message = (
                f"You cannot confirm this PaymentIntent because it has a status of {status}. Only a "
                "PaymentIntent with one of the following statuses may be confirmed: "
                "requires_payment_method, requires_confirmation, requires_action."
            )
        raise state_error(pi, message)
    if p.get("payment_method"):
        pm = payment_methods.resolve(ctx, p["payment_method"])
        check_owner(pi["customer"], pm, pi)
    elif pi["payment_method"]:
        saved = ctx.get(pi["payment_method"], "payment_method")
        assert saved is not None
        pm = saved
    elif pi["customer"]:
        raise state_error(
            pi,
            (
                "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the "
                f"PaymentIntent with {pi['customer']}, specify a payment method attached to this customer along with "
                "the customer ID."
            ),
        )
    else:
        raise state_error(
            pi,
            (
                "You cannot confirm this PaymentIntent because it's missing a payment method. You can either update "
                "the PaymentIntent with a payment method and then confirm it again, or confirm it again directly with "
                "a payment method or ConfirmationToken."
            ),
        )
    off_session = p.get("off_session") not in (None, False)
    apm = pi["automatic_payment_methods"]
    if apm and apm["allow_redirects"] == "always" and not off_session and not p.get("return_url"):
        # Documented Stripe behaviour: dashboard methods may redirect, so a return_url is required.
        raise state_error(
            pi,
            (
                "This PaymentIntent is configured to accept payment methods enabled in your Dashboard. Because some "
                "of these payment methods might redirect your customer off of your page, you must provide a "
                "`return_url`. If you don't want to accept redirect-based payment methods, set "
                "`automatic_payment_methods[enabled]` to `true` and `automatic_payment_methods[allow_redirects]` to "
                "`never` when creating Setup Intents and Payment Intents."
            ),
            code="parameter_missing",
        )
    for key in ("receipt_email", "setup_future_usage", "capture_method"):
        if key in p:
            pi[key] = p[key]
    pi["payment_method"] = pm["id"]
    card = payment_methods.profile(pm)
    if card is not None and card.requires_auth:
        # error_on_requires_action: fail like an off-session payment instead of waiting for the customer.
        if off_session or p.get("error_on_requires_action"):
            return _fail_authentication(ctx, pi, pm)
        return _require_action(ctx, pi, pm)
    if card is None:
        return _require_action(ctx, pi, pm)
    return _authorize(ctx, pi, pm)


def _require_action(ctx: Ctx, pi: Obj, pm: Obj) -> Obj:
    source = ids.new_id("src")
    pi["status"] = "requires_action"
    pi["next_action"] = {
        "type": "use_stripe_sdk",
        "use_stripe_sdk": {
            "source": source,
            "stripe_js": f"https://hooks.stripe.com/redirect/authenticate/{source}",
            "type": "three_d_secure_redirect",
        },
    }
    ctx.put(pi)
    ctx.emit("payment_intent.requires_action", pi)
    return pi


def _fail_authentication(ctx: Ctx, pi: Obj, pm: Obj) -> Obj:
    message = "Your card was declined. This transaction requires authentication."
    pi.update(
        status="requires_payment_method",
        payment_method=None,
        next_action=None,
        last_payment_error={
            "code": "authentication_required",
            "decline_code": "authentication_required",
            "doc_url": "https://stripe.com/docs/error-codes/authentication-required",
            "message": message,
            "payment_method": public(pm),
            "payment_method_type": "card",
            "type": "card_error",
        },
    )
    ctx.put(pi)
    ctx.emit("payment_intent.payment_failed", pi)
    ctx.keep_on_error = True
    raise StripeError(
        402,
        message,
        type="card_error",
        code="authentication_required",
        extra={"decline_code": "authentication_required", "payment_intent": public(pi), "payment_method": public(pm)},
    )


def _authorize(ctx: Ctx, pi: Obj, pm: Obj) -> Obj:
    card = payment_methods.profile(pm)
    assert card is not None
    if payment_methods.mark_checked(pm):
        ctx.put(pm)
    charge = charges.new_charge(ctx, pi, pm, card.decline)
    pi["latest_charge"] = charge["id"]
    pi["_local"]["charges"].append(charge["id"])
    pi["next_action"] = None
    if card.decline is not None:
        fields = payment_methods.decline_fields(card.decline)
        pi.update(
            status="requires_payment_method",
            payment_method=None,
            last_payment_error=dict(
                sorted(
                    {
                        **fields,
                        "charge": charge["id"],
                        "doc_url": "https://stripe.com/docs/error-codes/" + card.decline.code.replace("_", "-"),
                        "payment_method": public(pm),
                        "payment_method_type": "card",
                        "type": "card_error",
                    }.items()
                )
            ),
        )
        ctx.put(pi)
        ctx.emit("charge.failed", charge)
        ctx.emit("payment_intent.payment_failed", pi)
        ctx.keep_on_error = True
        raise payment_methods.decline_error(
            card.decline, charge=charge["id"], payment_intent=public(pi), payment_method=public(pm)
        )
    pi["last_payment_error"] = None
    ctx.emit("charge.succeeded", charge)
    if pi["capture_method"] == "manual":
        pi.update(status="requires_capture", amount_capturable=pi["amount"])
        ctx.put(pi)
        ctx.emit("payment_intent.amount_capturable_updated", pi)
    else:
        pi.update(status="succeeded", amount_received=pi["amount"])
        ctx.put(pi)
        ctx.emit("payment_intent.succeeded", pi)
    if pi["setup_future_usage"] and pi["customer"] and pm["customer"] is None:
        customer = ctx.get(pi["customer"], "customer")
        if customer is not None:
            payment_methods.attach(ctx, pm, customer)
    return pi


def complete_authentication(ctx: Ctx, pi: Obj, succeed: bool) -> Obj:
    """Stands in for the customer finishing (or failing) a 3-D Secure challenge."""
    if pi["status"] != "requires_action":
        raise state_error(pi, f"This PaymentIntent has a status of {pi['status']}, not requires_action.")
    pm = ctx.get(pi["payment_method"], "payment_method")
    assert pm is not None
    if succeed:
        return _authorize(ctx, pi, pm)
    pi.update(
        status="requires_payment_method",
        payment_method=None,
        next_action=None,
        last_payment_error={
            "code": "payment_intent_authentication_failure",
            "doc_url": "https://stripe.com/docs/error-codes/payment-intent-authentication-failure",
            "message": "The provided PaymentMethod has failed authentication. You can provide payment_method_data or "
            "a new PaymentMethod to attempt to fulfill this PaymentIntent again.",
            "payment_method": public(pm),
            "payment_method_type": "card",
            "type": "invalid_request_error",
        },
    )
    ctx.put(pi)
    ctx.emit("payment_intent.payment_failed", pi)
    return pi
