"""Properties of the amount rules: never more than what remains refundable, never negative."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from services.refunds.batches.planning import PlannedExclusion, PlannedItem, plan, refund_amount
from services.refunds.batches.schemas import AmountRule, RefundAbove, RefundFixed, RefundFull, RefundPercent
from services.refunds.clients import PledgeForRefund
from services.refunds.models import ItemAction

CAMPAIGN = uuid.uuid4()

rules = st.one_of(
    st.just(RefundFull()),
    st.integers(1, 100).map(lambda p: RefundPercent(percent=p)),
    st.integers(1, 10**9).map(lambda a: RefundFixed(amount=a, currency="USD")),
    st.integers(0, 10**9).map(lambda a: RefundAbove(threshold_amount=a, currency="USD")),
)


@st.composite
def charged_pledges(draw: st.DrawFn) -> PledgeForRefund:
    charged = draw(st.integers(1, 10**9))
    refunded = draw(st.integers(0, charged))
    return PledgeForRefund(
        pledge_id=uuid.uuid4(),
        campaign_id=CAMPAIGN,
        backer_id="b",
        status="active",
        funding_model=draw(st.sampled_from(["all_or_nothing", "flexible"])),
        currency="USD",
        total_amount=charged,
        charged_amount=charged,
        refunded_amount=refunded,
        refundable_amount=charged - refunded,
        stripe_payment_intent_id="pi_x",
        disputed=False,
        created_at=datetime.now(UTC),
    )


@given(charged_pledges(), rules)
def test_a_rule_never_refunds_more_than_remains_nor_a_negative_amount(
    pledge: PledgeForRefund, rule: AmountRule
) -> None:
    amount = refund_amount(pledge, rule)
    assert 0 <= amount <= pledge.refundable_amount
    outcome = plan(pledge, rule, CAMPAIGN)
    if isinstance(outcome, PlannedItem):
        assert outcome.action is ItemAction.REFUND
        assert 0 < outcome.amount <= pledge.refundable_amount
    else:
        assert amount == 0 or pledge.refundable_amount == 0


@given(charged_pledges())
def test_a_full_refund_refunds_exactly_what_remains(pledge: PledgeForRefund) -> None:
    outcome = plan(pledge, RefundFull(), CAMPAIGN)
    if pledge.refundable_amount:
        assert isinstance(outcome, PlannedItem)
        assert outcome.amount == pledge.refundable_amount
    else:
        assert isinstance(outcome, PlannedExclusion)
        assert outcome.reason == "already_refunded"
