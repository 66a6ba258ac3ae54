"""Property tests of the redaction functions: every policy, every viewer, any figures."""

from __future__ import annotations

import uuid

import orjson
from hypothesis import assume, given
from hypothesis import strategies as st

from services.campaigns.access import Viewer
from services.campaigns.disclosure.service import (
    amount_band,
    count_band,
    funding_figures,
    percent_of_goal,
    public_funding_figures,
    rounded_amount,
    tier_availability,
)
from services.campaigns.models import (
    AmountDisclosure,
    AvailabilityDisclosure,
    BackerCountDisclosure,
    Campaign,
    CampaignStatus,
    FundingModel,
    Tier,
)
from services.campaigns.tests.disclosure.figures import numbers_in
from shared.auth import Principal, Role

OWNER = "creator-owner"
VIEWERS = {
    "anonymous": Viewer(None),
    "backer": Viewer(Principal("backer-1", frozenset({Role.BACKER}))),
    "other_creator": Viewer(Principal("creator-2", frozenset({Role.CREATOR}))),
    "owner": Viewer(Principal(OWNER, frozenset({Role.CREATOR}))),
    "operator": Viewer(Principal("operator-1", frozenset({Role.OPERATOR}))),
    "service": Viewer(Principal("pledges", frozenset({Role.SERVICE}), is_service=True)),
}
PRIVILEGED = {"owner", "operator", "service"}


def _campaign(
    raised: int, pending: int, backers: int, amount: str, backer: str, availability: str, reveal: bool, status: str
) -> Campaign:
    return Campaign(
        id=uuid.uuid4(),
        creator_id=OWNER,
        status=CampaignStatus(status),
        currency="USD",
        goal_amount=1_000_000,
        cap_amount=5_000_000,
        funding_model=FundingModel.ALL_OR_NOTHING,
        amount_disclosure=AmountDisclosure(amount),
        backer_count_disclosure=BackerCountDisclosure(backer),
        availability_disclosure=AvailabilityDisclosure(availability),
        reveal_exact_after_close=reveal,
        committed_amount=raised,
        reserved_amount=pending,
        backer_count=backers,
    )


# Hidden figures end in non-zero cents so they can never coincide with a band edge or a rounded value.
odd_amount = st.integers(10_001, 4_000_000).filter(lambda n: n % 100 != 0)


@given(
    raised=odd_amount,
    pending=odd_amount,
    backers=st.integers(11, 9_999).filter(lambda n: n % 10 != 0),  # never equal to an amount
    amount=st.sampled_from(list(AmountDisclosure)),
    backer=st.sampled_from(list(BackerCountDisclosure)),
    availability=st.sampled_from(list(AvailabilityDisclosure)),
    reveal=st.booleans(),
    status=st.sampled_from(["live", "suspended", "succeeded", "failed", "canceled"]),
    viewer=st.sampled_from(sorted(VIEWERS)),
    refunded=odd_amount,
)
def test_figures_follow_the_policy_for_every_viewer(
    raised: int,
    pending: int,
    backers: int,
    amount: str,
    backer: str,
    availability: str,
    reveal: bool,
    status: str,
    viewer: str,
    refunded: int,
) -> None:
    assume(len({pending, raised, refunded}) == 3)
    campaign = _campaign(raised, pending, backers, amount, backer, availability, reveal, status)
    figures = funding_figures(campaign, VIEWERS[viewer], refunded_amount=refunded)
    shown = numbers_in(orjson.dumps(figures.model_dump(mode="json")).decode())
    closed_and_revealed = reveal and status in {"succeeded", "failed", "canceled"}

    if viewer in PRIVILEGED:
        assert (figures.exact, figures.amount_raised_amount, figures.backer_count) == (True, raised, backers)
        assert (figures.pending_amount, figures.refunded_amount) == (pending, refunded)
        return
    assert pending not in shown  # pending reservations are never public
    assert refunded not in shown  # nor refunds, even once exact figures are revealed after close
    assert (figures.pending_amount, figures.refunded_amount) == (None, None)
    if closed_and_revealed:
        assert (figures.exact, figures.amount_raised_amount, figures.backer_count) == (True, raised, backers)
        return

    assert figures.exact is False
    if amount == "exact":
        assert figures.amount_raised_amount == raised
    else:
        assert raised not in shown
    if amount == "rounded":
        assert figures.amount_raised_amount == rounded_amount(raised, "USD")
        assert figures.amount_raised_amount <= raised
        assert len(str(figures.amount_raised_amount).rstrip("0")) <= 2
    if amount == "bands":
        band = figures.amount_raised_band
        assert band is not None
        assert band.min_amount <= raised
        assert band.max_amount is None or raised < band.max_amount
    if amount == "percent_of_goal":
        assert figures.percent_of_goal == raised * 100 // 1_000_000
    if amount == "hidden":
        assert (figures.amount_raised_amount, figures.amount_raised_band, figures.percent_of_goal) == (None, None, None)

    if backer == "exact":
        assert figures.backer_count == backers
    else:
        assert figures.backer_count is None
        # A percentage of the goal that happens to equal the count is not the count leaking.
        if backers != percent_of_goal(raised, 1_000_000):
            assert backers not in shown
    if backer == "bands":
        count_band = figures.backer_count_band
        assert count_band is not None
        assert count_band.min_count <= backers
        assert count_band.max_count is None or backers < count_band.max_count


@given(
    limit=st.integers(10_001, 10**9),
    reserved=st.integers(1, 5_000),
    committed=st.integers(1, 5_000),
    availability=st.sampled_from(list(AvailabilityDisclosure)),
    viewer=st.sampled_from(sorted(VIEWERS)),
)
def test_tier_availability_is_exact_only_when_the_policy_or_the_viewer_allows(
    limit: int, reserved: int, committed: int, availability: str, viewer: str
) -> None:
    campaign = _campaign(10_001, 10_001, 11, "hidden", "hidden", availability, False, "live")
    tier = Tier(quantity_limit=limit, reserved_quantity=reserved, committed_quantity=committed)
    view = tier_availability(campaign, tier, VIEWERS[viewer])
    remaining = limit - reserved - committed
    assert view.status == "limited"
    if viewer in PRIVILEGED:
        assert (view.remaining_quantity, view.reserved_quantity, view.committed_quantity) == (
            remaining,
            reserved,
            committed,
        )
    elif availability == "exact":
        assert (view.remaining_quantity, view.reserved_quantity, view.committed_quantity) == (remaining, None, None)
    else:
        assert view.model_dump() == {
            "status": "limited",
            "remaining_quantity": None,
            "reserved_quantity": None,
            "committed_quantity": None,
        }


def test_sold_out_and_unlimited_tiers() -> None:
    campaign = _campaign(10_001, 0, 11, "hidden", "hidden", "coarse", False, "live")
    public = VIEWERS["anonymous"]
    assert (
        tier_availability(campaign, Tier(quantity_limit=3, reserved_quantity=1, committed_quantity=2), public).status
        == "sold_out"
    )
    assert (
        tier_availability(campaign, Tier(quantity_limit=None, reserved_quantity=0, committed_quantity=9), public).status
        == "available"
    )


def test_bands_and_rounding_examples() -> None:
    assert rounded_amount(1_234_567, "USD") == 1_200_000
    assert rounded_amount(5_432, "USD") == 5_400
    assert rounded_amount(99, "USD") == 0
    assert rounded_amount(123_456, "JPY") == 120_000
    assert amount_band(1_234_567, "USD").model_dump() == {"min_amount": 1_000_000, "max_amount": 2_500_000}
    assert amount_band(10**12, "USD").max_amount is None
    assert count_band(0).model_dump() == {"min_count": 0, "max_count": 10}
    assert count_band(12_000).model_dump() == {"min_count": 10_000, "max_count": None}


def test_events_carry_only_public_figures() -> None:
    campaign = _campaign(123_457, 0, 17, "hidden", "hidden", "coarse", False, "succeeded")
    public = public_funding_figures(campaign).model_dump()
    assert (public["amount_raised_amount"], public["backer_count"], public["exact"]) == (None, None, False)
    revealed = _campaign(123_457, 0, 17, "hidden", "hidden", "coarse", True, "succeeded")
    assert public_funding_figures(revealed).amount_raised_amount == 123_457
