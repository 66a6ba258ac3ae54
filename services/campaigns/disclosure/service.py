"""Redaction: the one place that turns a campaign's exact figures into what a viewer may see.

Every path that shows figures outside the service (campaign reads and lists, tier availability, events) goes
through these functions; nothing else formats a total for the public.
"""

from __future__ import annotations

from services.campaigns.access import Viewer
from services.campaigns.disclosure.schemas import (
    AmountBand,
    AvailabilityStatus,
    CountBand,
    DisclosurePolicy,
    FundingFigures,
    TierAvailability,
)
from services.campaigns.lifecycle import capabilities
from services.campaigns.models import (
    AmountDisclosure,
    AvailabilityDisclosure,
    BackerCountDisclosure,
    Campaign,
    Tier,
)
from shared.money import exponent, round_down

# Band edges in major units of the currency (multiplied by 10**exponent for minor units).
AMOUNT_BAND_EDGES = (0, 100, 500, 1_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000)
BACKER_BAND_EDGES = (0, 10, 50, 100, 500, 1_000, 5_000, 10_000)


def rounded_amount(amount: int, currency: str) -> int:
    """Two significant figures, rounded down, never finer than one major unit: 1,234,567 cents -> 1,200,000."""
    step = 10 ** max(exponent(currency), len(str(amount)) - 2)
    return round_down(amount, step)


def amount_band(amount: int, currency: str) -> AmountBand:
    scale = 10 ** exponent(currency)
    edges = [edge * scale for edge in AMOUNT_BAND_EDGES]
    lower = max(edge for edge in edges if edge <= amount)
    upper = next((edge for edge in edges if edge > amount), None)
    return AmountBand(min_amount=lower, max_amount=upper)


def count_band(count: int) -> CountBand:
    lower = max(edge for edge in BACKER_BAND_EDGES if edge <= count)
    upper = next((edge for edge in BACKER_BAND_EDGES if edge > count), None)
    return CountBand(min_count=lower, max_count=upper)


def percent_of_goal(amount: int, goal_amount: int) -> int:
    return (amount * 100) // goal_amount if goal_amount > 0 else 0


def policy_of(campaign: Campaign) -> DisclosurePolicy:
    return DisclosurePolicy(
        amount_raised=campaign.amount_disclosure,
        backer_count=campaign.backer_count_disclosure,
        tier_availability=campaign.availability_disclosure,
        reveal_exact_after_close=campaign.reveal_exact_after_close,
    )


def shows_exact(campaign: Campaign, viewer: Viewer) -> bool:
    if viewer.sees_everything(campaign):
        return True
    return campaign.reveal_exact_after_close and capabilities(campaign.status).closed


def funding_figures(campaign: Campaign, viewer: Viewer, *, refunded_amount: int) -> FundingFigures:
    """``refunded_amount``: the campaign's refunded total, shown to the creator and operators only (never
    revealed to anyone else, not even after close)."""
    raised, backers = campaign.committed_amount, campaign.backer_count
    if viewer.sees_everything(campaign):
        return FundingFigures(
            exact=True,
            amount_raised_amount=raised,
            percent_of_goal=percent_of_goal(raised, campaign.goal_amount),
            backer_count=backers,
            pending_amount=campaign.reserved_amount,
            refunded_amount=refunded_amount,
        )
    if shows_exact(campaign, viewer):
        return FundingFigures(
            exact=True,
            amount_raised_amount=raised,
            percent_of_goal=percent_of_goal(raised, campaign.goal_amount),
            backer_count=backers,
        )
    figures = FundingFigures(exact=False, amount_raised_amount=None)
    match campaign.amount_disclosure:
        case AmountDisclosure.EXACT:
            figures.amount_raised_amount = raised
            figures.percent_of_goal = percent_of_goal(raised, campaign.goal_amount)
        case AmountDisclosure.ROUNDED:
            figures.amount_raised_amount = rounded_amount(raised, campaign.currency)
            figures.amount_raised_rounded = True
        case AmountDisclosure.BANDS:
            figures.amount_raised_band = amount_band(raised, campaign.currency)
        case AmountDisclosure.PERCENT_OF_GOAL:
            figures.percent_of_goal = percent_of_goal(raised, campaign.goal_amount)
        case AmountDisclosure.HIDDEN:
            pass
    match campaign.backer_count_disclosure:
        case BackerCountDisclosure.EXACT:
            figures.backer_count = backers
        case BackerCountDisclosure.BANDS:
            figures.backer_count_band = count_band(backers)
        case BackerCountDisclosure.HIDDEN:
            pass
    return figures


def tier_availability(campaign: Campaign, tier: Tier, viewer: Viewer) -> TierAvailability:
    claimed = tier.reserved_quantity + tier.committed_quantity
    remaining = None if tier.quantity_limit is None else max(tier.quantity_limit - claimed, 0)
    if remaining is None:
        status = AvailabilityStatus.AVAILABLE
    elif remaining == 0:
        status = AvailabilityStatus.SOLD_OUT
    else:
        status = AvailabilityStatus.LIMITED
    if viewer.sees_everything(campaign):
        return TierAvailability(
            status=status,
            remaining_quantity=remaining,
            reserved_quantity=tier.reserved_quantity,
            committed_quantity=tier.committed_quantity,
        )
    exact = campaign.availability_disclosure is AvailabilityDisclosure.EXACT or shows_exact(campaign, viewer)
    return TierAvailability(status=status, remaining_quantity=remaining if exact else None)


def public_funding_figures(campaign: Campaign) -> FundingFigures:
    """What an anonymous reader sees: the form used in events that leave the service."""
    return funding_figures(campaign, Viewer(principal=None), refunded_amount=0)
