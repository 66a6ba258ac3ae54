"""Refusals of a reservation. None of them carries a figure (remaining capacity, totals, counts): the
pledges service may show them to a backer, and the disclosure policy may hide those figures."""

from __future__ import annotations

from shared.errors import Conflict, NotFound, UnprocessableContent


class ReservationNotFound(NotFound):
    code = "reservation_not_found"

    def __init__(self) -> None:
        super().__init__("No reservation for this pledge in this campaign.")


class CapReached(Conflict):
    code = "cap_reached"

    def __init__(self) -> None:
        super().__init__("This pledge would take the campaign past its funding cap.")


class TierSoldOut(Conflict):
    code = "tier_sold_out"

    def __init__(self) -> None:
        super().__init__("This reward tier has no quantity left.")


class BackerLimitReached(Conflict):
    code = "backer_limit_reached"

    def __init__(self) -> None:
        super().__init__("This backer already holds as many of this reward as one backer may.")


class CampaignNotAcceptingPledges(Conflict):
    code = "campaign_not_accepting_pledges"

    def __init__(self) -> None:
        super().__init__("The campaign is not live or its deadline has passed.")


class TermsChanged(Conflict):
    code = "terms_changed"

    def __init__(self, current_version: int) -> None:
        super().__init__(
            "The tier's terms changed since the backer saw them; show the current version and ask again.",
            extra={"current_version": current_version},
        )


class PledgeIdReused(Conflict):
    code = "pledge_id_reused"

    def __init__(self) -> None:
        super().__init__("This pledge id already holds a reservation with different details.")


class ReservationNotPending(Conflict):
    def __init__(self, status: str) -> None:
        super().__init__(f"The reservation is {status} and can no longer be confirmed.", code=f"reservation_{status}")


class ReservationExpired(Conflict):
    code = "reservation_expired"

    def __init__(self) -> None:
        super().__init__("The reservation expired before it was confirmed; reserve again.")


class CurrencyMismatch(UnprocessableContent):
    code = "currency_mismatch"

    def __init__(self) -> None:
        super().__init__("The pledge's currency is not the campaign's currency.")


class AmountBelowMinimum(UnprocessableContent):
    code = "amount_below_minimum"

    def __init__(self) -> None:
        super().__init__("The amount is below the tier's price plus shipping to the chosen region.")


class ShippingRegionUnavailable(UnprocessableContent):
    code = "shipping_region_unavailable"

    def __init__(self) -> None:
        super().__init__("The tier does not ship to this region (or a region is required).")
