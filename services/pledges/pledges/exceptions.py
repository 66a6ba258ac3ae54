from __future__ import annotations

from typing import Any

from shared.errors import Conflict, Forbidden, NotFound, ProblemError, ServiceUnavailable, UnprocessableContent


class PledgeNotFound(NotFound):
    code = "pledge_not_found"

    def __init__(self) -> None:
        super().__init__("No such pledge (or it is not yours to see).")


class CampaignNotVisible(NotFound):
    code = "campaign_not_found"

    def __init__(self) -> None:
        super().__init__("No such campaign.")


class NotCampaignCreator(Forbidden):
    code = "not_campaign_creator"

    def __init__(self) -> None:
        super().__init__("Only the campaign's creator or an operator may list its pledges.")


class IdempotencyKeyRequired(ProblemError):
    status, code, title = 400, "idempotency_key_required", "Bad request"

    def __init__(self) -> None:
        super().__init__("The Idempotency-Key header is required for this request.")


class IdempotencyKeyReused(UnprocessableContent):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("This Idempotency-Key was already used with a different request.")


class PledgeInProgress(Conflict):
    code = "pledge_in_progress"

    def __init__(self) -> None:
        super().__init__(
            "This pledge is still being processed; retry later with the same Idempotency-Key.",
            headers={"Retry-After": "1"},
        )


class PledgePending(ServiceUnavailable):
    """The saga could not finish now (an upstream was unavailable); it is resumed by a retry or the sweeper."""

    code = "pledge_pending"

    def __init__(self, pledge_id: str) -> None:
        super().__init__(
            "The pledge could not be completed right now; retry with the same Idempotency-Key.",
            extra={"pledge_id": pledge_id},
            headers={"Retry-After": "2"},
        )


class PledgeRefused(ProblemError):
    """The stored outcome of a pledge that did not go through (replayed identically for the same key)."""

    def __init__(self, status: int, code: str, detail: str | None, extra: dict[str, Any]) -> None:
        titles = {402: "Payment declined", 404: "Not found", 409: "Conflict", 422: "Invalid request"}
        super().__init__(detail, status=status, code=code, title=titles.get(status, "Pledge refused"), extra=extra)


class TierVersionNotFound(NotFound):
    code = "tier_version_not_found"

    def __init__(self) -> None:
        super().__init__("No such tier or tier version in this campaign.")


class AmountBelowMinimum(UnprocessableContent):
    code = "amount_below_minimum"

    def __init__(self) -> None:
        super().__init__("The amount is below the tier's price plus shipping to the chosen region.")


class ShippingRegionUnavailable(UnprocessableContent):
    code = "shipping_region_unavailable"

    def __init__(self) -> None:
        super().__init__("The tier does not ship to this region (or a region is required).")


class CurrencyMismatch(UnprocessableContent):
    code = "currency_mismatch"

    def __init__(self) -> None:
        super().__init__("The pledge's currency is not the campaign's currency.")


class UpstreamUnavailable(ServiceUnavailable):
    code = "upstream_unavailable"

    def __init__(self, what: str) -> None:
        super().__init__(f"The {what} is unavailable; retry later.", headers={"Retry-After": "2"})


class PledgeNotCancelable(Conflict):
    code = "pledge_not_cancelable"


class PledgeNotModifiable(Conflict):
    code = "pledge_not_modifiable"


class NoConsentRequested(Conflict):
    code = "no_consent_requested"

    def __init__(self, detail: str = "No change of terms awaits this pledge's decision.") -> None:
        super().__init__(detail)


class AlreadyCharged(Conflict):
    code = "already_charged"

    def __init__(self) -> None:
        super().__init__("Money was taken for this pledge: refund it instead of canceling it.")


class RefundExceedsCharged(Conflict):
    code = "refund_exceeds_charged"

    def __init__(self) -> None:
        super().__init__("Recording this refund would refund more than was charged for the pledge.")


class RefundIdReused(Conflict):
    code = "refund_id_reused"

    def __init__(self) -> None:
        super().__init__("This refund id is already recorded for another pledge.")


class PaymentMethodDeclined(ProblemError):
    status, code, title = 402, "payment_declined", "Payment declined"
