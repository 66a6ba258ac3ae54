"""Money: integer minor units plus an ISO-4217 currency. No floats anywhere near money.

The minor-unit exponent of each currency is decided here once. Stripe's rules are followed
(https://docs.stripe.com/currencies#zero-decimal): zero-decimal currencies are sent as whole units,
three-decimal currencies as thousandths.
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

from pydantic import AfterValidator, Field

# ISO-4217 codes Stripe settles in (a subset of ISO-4217 that covers every currency we can charge).
SUPPORTED_CURRENCIES: frozenset[str] = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BWP BYN BZD CAD CDF
    CHF CLP CNY COP CRC CVE CZK DJF DKK DOP DZD EGP ETB EUR FJD FKP GBP GEL GIP GMD GNF GTQ GYD HKD HNL HTG
    HUF IDR ILS INR ISK JMD JOD JPY KES KGS KHR KMF KRW KWD KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK
    MNT MOP MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB
    RWF SAR SBD SCR SEK SGD SHP SLE SOS SRD STD SZL THB TJS TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VND
    VUV WST XAF XCD XOF XPF YER ZAR ZMW""".split()
)
ZERO_DECIMAL: frozenset[str] = frozenset("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF".split())
THREE_DECIMAL: frozenset[str] = frozenset("BHD JOD KWD OMR TND".split())

# Largest amount Stripe accepts is eight digits in the smallest unit for most currencies; we allow
# twelve so that campaign totals (sums of many pledges) still fit, far below BigInteger's range.
MAX_AMOUNT = 999_999_999_999


def normalize_currency(value: str) -> str:
    code = value.strip().upper()
    if code not in SUPPORTED_CURRENCIES:
        raise ValueError(f"unsupported currency {value!r}: expected an ISO-4217 code such as 'USD'")
    return code


def exponent(currency: str) -> int:
    code = normalize_currency(currency)
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def format_amount(amount: int, currency: str) -> str:
    """Human form of a minor-unit amount: ``format_amount(123456, "USD") == "1,234.56 USD"``."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError("money amounts are integers in minor units")
    exp = exponent(currency)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**exp) if exp else (abs(amount), 0)
    text = f"{whole:,}"
    if exp:
        text += f".{frac:0{exp}d}"
    return f"{sign}{text} {normalize_currency(currency)}"


def round_down(amount: int, step: int) -> int:
    """Round a non-negative amount down to a multiple of ``step`` (used for coarse public figures)."""
    if step <= 0:
        raise ValueError("step must be positive")
    return (amount // step) * step


def to_stripe_currency(currency: str) -> str:
    return normalize_currency(currency).lower()


class Money(NamedTuple):
    amount: int
    currency: str


Currency = Annotated[
    str,
    AfterValidator(normalize_currency),
    Field(min_length=3, max_length=3, description="ISO-4217 currency code, e.g. `USD`.", examples=["USD"]),
]
# strict=True rejects floats (and numeric strings): 12.5 dollars cannot sneak in as 12.5.
Amount = Annotated[
    int,
    Field(strict=True, ge=0, le=MAX_AMOUNT, description="Amount in the currency's minor units (cents)."),
]
PositiveAmount = Annotated[
    int,
    Field(strict=True, gt=0, le=MAX_AMOUNT, description="Amount in the currency's minor units (cents)."),
]
