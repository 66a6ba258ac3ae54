from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ValidationError

from shared.money import Amount, Currency, exponent, format_amount, round_down, to_stripe_currency


class Price(BaseModel):
    price_amount: Amount
    currency: Currency


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (123456, "USD", "1,234.56 USD"),
        (5, "eur", "0.05 EUR"),
        (1500, "JPY", "1,500 JPY"),
        (1234, "KWD", "1.234 KWD"),
        (-250, "USD", "-2.50 USD"),
        (0, "USD", "0.00 USD"),
    ],
)
def test_amounts_are_formatted_by_the_currency_exponent(amount: int, currency: str, text: str) -> None:
    assert format_amount(amount, currency) == text


def test_exponents_follow_stripe() -> None:
    assert (exponent("USD"), exponent("JPY"), exponent("BHD")) == (2, 0, 3)
    assert to_stripe_currency("Usd") == "usd"


@pytest.mark.parametrize("bad", [12.5, 12.0, "1200", True, -1, 10**13])
def test_money_fields_accept_only_nonnegative_integers(bad: object) -> None:
    with pytest.raises(ValidationError):
        Price.model_validate_json(json.dumps({"price_amount": bad, "currency": "USD"}))
    with pytest.raises(ValidationError):
        Price.model_validate({"price_amount": bad, "currency": "USD"})


@pytest.mark.parametrize("bad", ["US", "XYZ", "dollars", ""])
def test_currencies_must_be_iso_4217(bad: str) -> None:
    with pytest.raises(ValidationError):
        Price(price_amount=1, currency=bad)


def test_currency_is_normalised_to_upper_case() -> None:
    assert Price(price_amount=1, currency="gbp").currency == "GBP"


def test_formatting_refuses_floats() -> None:
    with pytest.raises(TypeError):
        format_amount(12.5, "USD")  # type: ignore[arg-type]


def test_round_down() -> None:
    assert round_down(123_456, 10_000) == 120_000
    with pytest.raises(ValueError, match="positive"):
        round_down(1, 0)
