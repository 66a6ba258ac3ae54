"""Stripe's test cards, their tokens (``tok_*``, ``pm_card_*``) and how each one behaves.

Behaviours follow https://docs.stripe.com/testing: declining cards fail at attach, at
SetupIntent confirmation and at payment; ``chargeCustomerFail`` attaches but fails to charge;
3-D Secure cards need authentication on every payment; the two refund cards make refunds
change state after the fact (pending -> succeeded, succeeded -> failed).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ids


@dataclass(frozen=True)
class Decline:
    code: str
    decline_code: str
    message: str
    advice_code: str | None
    network_decline_code: str | None
    seller_message: str
    network_advice_code: str | None = None
    param: str | None = None


GENERIC = Decline(
    "card_declined",
    "generic_decline",
    "Your card was declined.",
    "try_again_later",
    "01",
    "The bank did not return any further details with this decline.",
)
INSUFFICIENT_FUNDS = Decline(
    "card_declined",
    "insufficient_funds",
    "Your card has insufficient funds.",
    "try_again_later",
    "51",
    "The bank returned the decline code `insufficient_funds`.",
)
LOST_CARD = Decline(
    "card_declined",
    "lost_card",
    "Your card was declined.",
    "do_not_try_again",
    "41",
    "The bank returned the decline code `lost_card`.",
)
STOLEN_CARD = Decline(
    "card_declined",
    "stolen_card",
    "Your card was declined.",
    "do_not_try_again",
    "43",
    "The bank returned the decline code `stolen_card`.",
)
EXPIRED = Decline(
    "expired_card",
    "expired_card",
    "Your card has expired.",
    "confirm_card_data",
    "54",
    "The bank returned the decline code `expired_card`.",
    network_advice_code="03",
    param="exp_month",
)


@dataclass(frozen=True)
class CardProfile:
    number: str
    brand: str
    funding: str = "credit"
    country: str = "US"
    decline: Decline | None = None
    # chargeCustomerFail: attaching succeeds, charging fails.
    attach_ok: bool = True
    # 3-D Secure required on every transaction (off-session: authentication_required).
    requires_auth: bool = False
    # "pending": refunds go pending -> succeeded; "fail": succeeded -> failed.
    refund: str | None = None

    @property
    def last4(self) -> str:
        return self.number[-4:]


CARDS: dict[str, CardProfile] = {
    c.number: c
    for c in (
        CardProfile("4242424242424242", "visa"),
        CardProfile("4000056655665556", "visa", funding="debit"),
        CardProfile("5555555555554444", "mastercard"),
        CardProfile("2223003122003222", "mastercard"),
        CardProfile("5200828282828210", "mastercard", funding="debit"),
        CardProfile("378282246310005", "amex"),
        CardProfile("6011111111111117", "discover"),
        CardProfile("4000000000000077", "visa"),
        CardProfile("4000000000000002", "visa", decline=GENERIC, attach_ok=False),
        CardProfile("4000000000009995", "visa", decline=INSUFFICIENT_FUNDS, attach_ok=False),
        CardProfile("4000000000009987", "visa", decline=LOST_CARD, attach_ok=False),
        CardProfile("4000000000009979", "visa", decline=STOLEN_CARD, attach_ok=False),
        CardProfile("4000000000000069", "visa", decline=EXPIRED, attach_ok=False),
        CardProfile("4000000000000341", "visa", decline=GENERIC, attach_ok=True),
        CardProfile("4000002760003184", "visa", country="DE", requires_auth=True),
        CardProfile("4000000000003220", "visa", country="IE", requires_auth=True),
        CardProfile("4000000000007726", "visa", refund="pending"),
        CardProfile("4000000000005126", "visa", refund="fail"),
    )
}

# Every name Stripe accepts as ``tok_<name>`` and ``pm_card_<name>``.
_NAMES: dict[str, str] = {
    "visa": "4242424242424242",
    "visa_debit": "4000056655665556",
    "mastercard": "5555555555554444",
    "mastercard_debit": "5200828282828210",
    "amex": "378282246310005",
    "discover": "6011111111111117",
    "bypassPending": "4000000000000077",
    "chargeDeclined": "4000000000000002",
    "visa_chargeDeclined": "4000000000000002",
    "chargeDeclinedInsufficientFunds": "4000000000009995",
    "visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "chargeDeclinedLostCard": "4000000000009987",
    "visa_chargeDeclinedLostCard": "4000000000009987",
    "chargeDeclinedStolenCard": "4000000000009979",
    "visa_chargeDeclinedStolenCard": "4000000000009979",
    "chargeDeclinedExpiredCard": "4000000000000069",
    "visa_chargeDeclinedExpiredCard": "4000000000000069",
    "chargeCustomerFail": "4000000000000341",
    "authenticationRequired": "4000002760003184",
    "threeDSecure2Required": "4000000000003220",
    "threeDSecureRequired": "4000000000003220",
    "pendingRefund": "4000000000007726",
    "refundFail": "4000000000005126",
}
TOKENS: dict[str, str] = {f"tok_{name}": number for name, number in _NAMES.items()}
PM_TOKENS: dict[str, str] = {f"pm_card_{name}": number for name, number in _NAMES.items()}


def luhn_ok(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def brand_of(number: str) -> str:
    if number.startswith("4"):
        return "visa"
    if number[:2] in ("34", "37"):
        return "amex"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4] or 0) <= 2720:
        return "mastercard"
    if number.startswith(("6011", "65")):
        return "discover"
    if number.startswith("35"):
        return "jcb"
    if number.startswith(("30", "36", "38")):
        return "diners"
    if number.startswith("62"):
        return "unionpay"
    return "unknown"


def card_for_number(number: str) -> CardProfile:
    return CARDS.get(number) or CardProfile(number, brand_of(number))


def fingerprint(number: str) -> str:
    """Stable per card number, like Stripe's (the same card gives the same fingerprint)."""
    return ids.stable_token("fingerprint:" + number, 16)
