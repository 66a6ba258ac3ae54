"""What a batch does with each selected pledge: refund an amount, cancel it, or leave it out with a reason.

Pure functions of the pledge (as the pledges service reports it) and the amount rule, so the preview an
operator approves is exactly what the workers later execute.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from services.refunds.batches.schemas import AmountRule, RefundAbove, RefundFixed, RefundFull, RefundPercent
from services.refunds.clients import PledgeForRefund
from services.refunds.models import ItemAction

# Pledge statuses in which a never-charged pledge can still be canceled (all-or-nothing before the charge, or
# after a failed charge within its grace period), as the pledges service's cancel route accepts them (its
# contract: `POST /internal/pledges/{id}/cancel`).
CANCELABLE_STATUSES = frozenset({"active", "payment_failed"})


class ExclusionReason:
    ALREADY_REFUNDED = "already_refunded"
    DISPUTED = "disputed"
    NEVER_CHARGED = "never_charged"
    IN_OTHER_BATCH = "in_other_batch"
    NOTHING_TO_REFUND = "nothing_to_refund"
    CURRENCY_MISMATCH = "currency_mismatch"
    OTHER_CAMPAIGN = "other_campaign"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class PlannedItem:
    pledge: PledgeForRefund
    action: ItemAction
    amount: int


@dataclass(frozen=True, slots=True)
class PlannedExclusion:
    pledge_id: uuid.UUID
    reason: str
    detail: str | None = None


def refund_amount(pledge: PledgeForRefund, rule: AmountRule) -> int:
    """The amount the rule refunds on this charged pledge (0: nothing). Never above what remains refundable."""
    refundable = max(0, pledge.refundable_amount)
    if isinstance(rule, RefundFull):
        amount = refundable
    elif isinstance(rule, RefundPercent):
        amount = refundable * rule.percent // 100
    elif isinstance(rule, RefundFixed):
        amount = rule.amount
    elif isinstance(rule, RefundAbove):
        amount = pledge.charged_amount - rule.threshold_amount
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"unknown amount rule {rule!r}")
    return max(0, min(amount, refundable))


def plan(
    pledge: PledgeForRefund, rule: AmountRule, campaign_id: uuid.UUID, *, in_other_batch: bool = False
) -> PlannedItem | PlannedExclusion:
    if pledge.campaign_id != campaign_id:
        return PlannedExclusion(pledge.pledge_id, ExclusionReason.OTHER_CAMPAIGN, "The pledge is for another campaign.")
    if in_other_batch:
        return PlannedExclusion(
            pledge.pledge_id, ExclusionReason.IN_OTHER_BATCH, "An open refund batch already includes this pledge."
        )
    if pledge.disputed:
        return PlannedExclusion(
            pledge.pledge_id, ExclusionReason.DISPUTED, "The payment is disputed; the dispute decides the refund."
        )
    if pledge.charged_amount <= 0 or not pledge.stripe_payment_intent_id:
        if pledge.status in CANCELABLE_STATUSES and pledge.funding_model == "all_or_nothing":
            if isinstance(rule, RefundFull):
                return PlannedItem(pledge, ItemAction.CANCEL_PLEDGE, 0)
            return PlannedExclusion(
                pledge.pledge_id,
                ExclusionReason.NEVER_CHARGED,
                "Never charged: only a full refund cancels the pledge instead.",
            )
        return PlannedExclusion(
            pledge.pledge_id, ExclusionReason.NEVER_CHARGED, f"Never charged (pledge status {pledge.status})."
        )
    if pledge.refundable_amount <= 0:
        return PlannedExclusion(pledge.pledge_id, ExclusionReason.ALREADY_REFUNDED, "Nothing left to refund.")
    if isinstance(rule, RefundFixed | RefundAbove) and rule.currency != pledge.currency.upper():
        return PlannedExclusion(
            pledge.pledge_id,
            ExclusionReason.CURRENCY_MISMATCH,
            f"The pledge is in {pledge.currency.upper()}, the rule in {rule.currency}.",
        )
    amount = refund_amount(pledge, rule)
    if amount <= 0:
        return PlannedExclusion(pledge.pledge_id, ExclusionReason.NOTHING_TO_REFUND, "The rule refunds nothing here.")
    return PlannedItem(pledge, ItemAction.REFUND, amount)
