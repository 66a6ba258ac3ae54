from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.campaigns.tiers.terms import ChangeReason, TermsContent, material_changes

BASE = TermsContent.from_parts(
    title="The game",
    description="One copy.",
    price_amount=5_000,
    currency="USD",
    items=[{"name": "Game", "quantity": 1}, {"name": "Sticker", "quantity": 2, "description": "vinyl"}],
    estimated_delivery="2027-06",
    shipping=[{"region": "US", "shipping_amount": 1_000}, {"region": "FR", "shipping_amount": 2_000}],
)


def _with(**changes: Any) -> TermsContent:
    return dataclasses.replace(BASE, **changes)


@pytest.mark.parametrize(
    ("new", "reasons"),
    [
        (_with(title="The Game", description="One copy, signed."), []),
        (_with(price_amount=4_000), []),
        (_with(price_amount=5_001), [ChangeReason.PRICE_INCREASED]),
        (_with(items=(("Game", 1, None),)), [ChangeReason.ITEMS_REMOVED]),
        (_with(items=(("Game", 1, None), ("Sticker", 1, "vinyl"))), [ChangeReason.ITEMS_CHANGED]),
        (_with(items=(*BASE.items, ("Poster", 1, None))), []),
        (_with(estimated_delivery="2027-07"), [ChangeReason.DELIVERY_LATER]),
        (_with(estimated_delivery="2027-05"), []),
        (_with(shipping=(("FR", 2_000), ("US", 1_500))), [ChangeReason.SHIPPING_CHANGED]),
        (_with(shipping=(("US", 1_000),)), [ChangeReason.SHIPPING_CHANGED]),
        (_with(shipping=(("DE", 2_500), ("FR", 2_000), ("US", 1_000))), []),
        (
            _with(price_amount=9_000, estimated_delivery="2028-01"),
            [ChangeReason.PRICE_INCREASED, ChangeReason.DELIVERY_LATER],
        ),
    ],
)
def test_material_changes_are_classified(new: TermsContent, reasons: list[ChangeReason]) -> None:
    assert material_changes(BASE, new) == reasons


def test_the_hash_ignores_shipping_order_but_not_content() -> None:
    reordered = TermsContent.from_parts(
        title=BASE.title,
        description=BASE.description,
        price_amount=BASE.price_amount,
        currency=BASE.currency,
        items=BASE.items_json(),
        estimated_delivery=BASE.estimated_delivery,
        shipping=list(reversed(BASE.shipping_json())),
    )
    assert reordered.content_hash() == BASE.content_hash()
    assert _with(description="One copy").content_hash() != BASE.content_hash()
    assert len(BASE.content_hash()) == 64


@given(price=st.integers(1, 10**9), delta=st.integers(-(10**6), 10**6))
def test_only_a_higher_price_is_material(price: int, delta: int) -> None:
    old, new = _with(price_amount=price), _with(price_amount=max(1, price + delta))
    assert (ChangeReason.PRICE_INCREASED in material_changes(old, new)) == (new.price_amount > price)
