"""Refunds, by PaymentIntent or by charge, with Stripe's refusals and its asynchronous test cards.

Refusal messages are the ones recorded from the real API (stripe_world cassette 05):
over-refund, already refunded, uncaptured charge, unknown charge, neither parameter given.
"""

from __future__ import annotations

from .. import ids
from ..core import Ctx, ListPage, Obj, diff, format_amount, merge_metadata, page_bounds, paginate, public
from ..errors import StripeError, invalid, missing
from ..params import EXPAND, LIST_PARAMS, Enum, Int, IntOrRange, Meta, Str
from . import charges, payment_methods

REASONS = ("duplicate", "fraudulent", "requested_by_customer")
CREATE = {
    "charge": Str(),
    "payment_intent": Str(),
    "amount": Int(),
    "reason": Enum(*REASONS),
    "metadata": Meta(),
    "instructions_email": Str(),
    "expand": EXPAND,
}
CHARGE_REFUND = {k: v for k, v in CREATE.items() if k not in ("charge",)}
UPDATE = {"metadata": Meta(), "expand": EXPAND}
RETRIEVE = {"expand": EXPAND}
CANCEL = {"expand": EXPAND}
LIST = {**LIST_PARAMS, "charge": Str(), "payment_intent": Str(), "created": IntOrRange()}


def create(ctx: Ctx, p: Obj) -> Obj:
    charge_id, intent_id = p.get("charge"), p.get("payment_intent")
    if not charge_id and not intent_id:
        raise invalid("One of the following params should be provided for this request: payment_intent or charge.")
    if intent_id:
        pi = ctx.get(intent_id, "payment_intent")
        if pi is None:
            # Inferred from the recorded unknown-charge case (404, resource_missing).
            raise missing("payment_intent", intent_id, param="payment_intent")
        charge = ctx.get(pi["latest_charge"], "charge")
        if charge is None or charge["status"] != "succeeded":
            raise invalid(
                f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.", param="payment_intent"
            )
        if charge_id and charge_id != charge["id"]:
            raise invalid(f"The charge {charge_id} does not belong to the PaymentIntent {pi['id']}.", param="charge")
    else:
        charge = ctx.get(charge_id, "charge")
        if charge is None:
            raise missing("charge", str(charge_id), param="id")
    return refund_charge(ctx, charge, p)


def refund_charge(ctx: Ctx, charge: Obj, p: Obj) -> Obj:
    if charge["status"] == "failed":
        raise invalid(f"Charge {charge['id']} has failed and cannot be refunded.")
    if not charge["captured"]:
        raise invalid(
            f"This uncaptured Charge was created by a PaymentIntent ({charge['payment_intent']}). You must cancel "
            "the PaymentIntent to reverse the authorization instead of refunding the Charge directly. For more "
            "information, see https://stripe.com/docs/payments/place-a-hold-on-a-payment-method"
        )
    refundable = charge["amount_captured"] - charge["amount_refunded"]
    if refundable <= 0:
        raise invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
    amount = p.get("amount", refundable)
    if amount < 1:
        raise StripeError(
            400, "This value must be greater than or equal to 1.", param="amount", code="parameter_invalid_integer"
        )
    if amount > refundable:
        currency = charge["currency"]
        raise invalid(
            f"Refund amount ({format_amount(amount, currency)}) is greater than unrefunded amount on charge "
            f"({format_amount(refundable, currency)})",
            param="amount",
        )
    pm = ctx.get(charge["payment_method"], "payment_method")
    card = payment_methods.profile(pm) if pm else None
    behaviour = card.refund if card else None
    refund: Obj = {
        "id": ids.new_id("re", lead="3"),
        "object": "refund",
        "amount": amount,
        "balance_transaction": ids.new_id("txn", lead="3"),
        "charge": charge["id"],
        "created": ctx.now,
        "currency": charge["currency"],
        "customer": charge["customer"],
        "customer_account": None,
        "destination_details": {
            "card": {"reference_status": "pending", "reference_type": "acquirer_reference_number", "type": "refund"},
            "type": "card",
        },
        "metadata": p.get("metadata") or {},
        "payment_intent": charge["payment_intent"],
        "payment_method": charge["payment_method"],
    }
    if behaviour == "pending":
        refund["pending_reason"] = "processing"
    refund.update(
        {
            "reason": p.get("reason"),
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "pending" if behaviour == "pending" else "succeeded",
            "transfer_reversal": None,
        }
    )
    ctx.put(refund)
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    charge["_local"]["refunds"].append(refund["id"])
    ctx.put(charge)
    ctx.emit("refund.created", refund)
    ctx.emit("charge.refunded", charge)
    if behaviour == "pending":
        ctx.schedule("refund.succeed", refund["id"])
    elif behaviour == "fail":
        ctx.schedule("refund.fail", refund["id"])
    return refund


def settle(ctx: Ctx, refund_id: str) -> None:
    """4000000000007726: a pending refund succeeds some time later."""
    refund = ctx.get(refund_id, "refund")
    if refund is None or refund["status"] != "pending":
        return
    before = public(refund)
    refund.pop("pending_reason", None)
    refund["status"] = "succeeded"
    ctx.put(refund)
    changes = diff(before, refund)
    ctx.emit("refund.updated", refund, changes)
    ctx.emit("charge.refund.updated", refund, changes)


def fail(ctx: Ctx, refund_id: str) -> None:
    """4000000000005126: a refund reported succeeded fails later with ``expired_or_canceled_card``;
    the money goes back to the merchant, so the charge is no longer refunded by that amount."""
    refund = ctx.get(refund_id, "refund")
    if refund is None or refund["status"] not in ("succeeded", "pending"):
        return
    before = public(refund)
    refund.update(
        status="failed",
        failure_balance_transaction=ids.new_id("txn", lead="3"),
        failure_reason="expired_or_canceled_card",
    )
    ctx.put(refund)
    charge = ctx.get(refund["charge"], "charge")
    if charge is not None:
        charge["amount_refunded"] = max(0, charge["amount_refunded"] - refund["amount"])
        charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"] > 0
        ctx.put(charge)
    changes = {"status": before["status"]}
    ctx.emit("refund.updated", refund, changes)
    ctx.emit("refund.failed", refund)
    ctx.emit("charge.refund.updated", refund, changes)


def _get(ctx: Ctx, refund_id: str) -> Obj:
    refund = ctx.get(refund_id, "refund")
    if refund is None:
        raise missing("refund", refund_id, param="id")
    return refund


def retrieve(ctx: Ctx, p: Obj, refund: str) -> Obj:
    return _get(ctx, refund)


def update(ctx: Ctx, p: Obj, refund: str) -> Obj:
    obj = _get(ctx, refund)
    before = public(obj)
    if "metadata" in p:
        obj["metadata"] = merge_metadata(obj["metadata"], p["metadata"])
    ctx.put(obj)
    changes = diff(before, obj)
    if changes:
        ctx.emit("refund.updated", obj, changes)
        ctx.emit("charge.refund.updated", obj, changes)
    return obj


def cancel(ctx: Ctx, p: Obj, refund: str) -> Obj:
    _get(ctx, refund)
    # Recorded: card refunds cannot be canceled (only refunds awaiting customer action can).
    raise invalid("Canceling this refund is unsupported.")


def list_all(ctx: Ctx, p: Obj) -> ListPage:
    filters = {k: p[k] for k in ("charge", "payment_intent") if p.get(k)}
    extra = None
    if filters:
        # Recorded: a filtered refund list carries a ``count`` of everything that matched.
        total = len(ctx.db.objects_by("refund", *next(iter(filters.items()))))
        extra = {"count": total}
    return paginate(ctx, "refund", p, "/v1/refunds", filters, "refund", extra)


# -- the charge-scoped paths (/v1/charges/{charge}/refund[s]) ---------------------------------


def charge_refund(ctx: Ctx, p: Obj, charge: str) -> Obj:
    """The legacy ``POST /v1/charges/{charge}/refund`` answers with the charge."""
    obj = charges.get(ctx, charge)
    refund_charge(ctx, obj, p)
    return obj


def charge_refunds_create(ctx: Ctx, p: Obj, charge: str) -> Obj:
    return refund_charge(ctx, charges.get(ctx, charge), p)


def charge_refunds_list(ctx: Ctx, p: Obj, charge: str) -> ListPage:
    obj = charges.get(ctx, charge)
    limit, _, _ = page_bounds(p)
    ids_newest_first = list(reversed(obj["_local"]["refunds"]))
    data = [r for r in (ctx.get(i, "refund") for i in ids_newest_first) if r is not None]
    return ListPage(data[:limit], len(data) > limit, f"/v1/charges/{charge}/refunds")


def charge_refunds_retrieve(ctx: Ctx, p: Obj, charge: str, refund: str) -> Obj:
    obj = charges.get(ctx, charge)
    found = ctx.get(refund, "refund")
    if found is None or found["charge"] != obj["id"]:
        raise missing("refund", refund, param="refund")
    return found
