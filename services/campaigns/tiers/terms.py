"""Reward terms as content: a canonical form, its hash, and whether a change is material to backers.

Material (backers are asked to accept or withdraw): the price goes up, an item is removed or changed, the
delivery moves later, or shipping changes (a region dropped or its amount changed). Not material: wording,
a lower price, an added item or region, an earlier delivery.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson


class ChangeReason(StrEnum):
    PRICE_INCREASED = "price_increased"
    ITEMS_REMOVED = "items_removed"
    ITEMS_CHANGED = "items_changed"
    DELIVERY_LATER = "delivery_later"
    SHIPPING_CHANGED = "shipping_changed"


@dataclass(frozen=True)
class TermsContent:
    title: str
    description: str
    price_amount: int
    currency: str
    items: tuple[tuple[str, int, str | None], ...]  # (name, quantity, description)
    estimated_delivery: str  # "YYYY-MM"
    shipping: tuple[tuple[str, int], ...]  # (region, shipping_amount), sorted by region

    @classmethod
    def from_parts(
        cls,
        *,
        title: str,
        description: str,
        price_amount: int,
        currency: str,
        items: list[dict[str, Any]],
        estimated_delivery: str,
        shipping: list[dict[str, Any]],
    ) -> TermsContent:
        return cls(
            title=title,
            description=description,
            price_amount=price_amount,
            currency=currency,
            items=tuple((i["name"], int(i["quantity"]), i.get("description")) for i in items),
            estimated_delivery=estimated_delivery,
            shipping=tuple(sorted((s["region"], int(s["shipping_amount"])) for s in shipping)),
        )

    def items_json(self) -> list[dict[str, Any]]:
        return [{"name": n, "quantity": q, "description": d} for n, q, d in self.items]

    def shipping_json(self) -> list[dict[str, Any]]:
        return [{"region": r, "shipping_amount": a} for r, a in self.shipping]

    def canonical(self) -> bytes:
        document = {
            "title": self.title,
            "description": self.description,
            "price_amount": self.price_amount,
            "currency": self.currency,
            "items": self.items_json(),
            "estimated_delivery": self.estimated_delivery,
            "shipping": self.shipping_json(),
        }
        return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)

    def content_hash(self) -> str:
        """SHA-256 of the canonical JSON: the pledges service keeps it with the accepted-terms snapshot."""
        return hashlib.sha256(self.canonical()).hexdigest()


def material_changes(old: TermsContent, new: TermsContent) -> list[ChangeReason]:
    reasons: list[ChangeReason] = []
    if new.price_amount > old.price_amount:
        reasons.append(ChangeReason.PRICE_INCREASED)
    old_items = {name: (quantity, description) for name, quantity, description in old.items}
    new_items = {name: (quantity, description) for name, quantity, description in new.items}
    if any(name not in new_items for name in old_items):
        reasons.append(ChangeReason.ITEMS_REMOVED)
    if any(name in new_items and new_items[name] != details for name, details in old_items.items()):
        reasons.append(ChangeReason.ITEMS_CHANGED)
    if new.estimated_delivery > old.estimated_delivery:
        reasons.append(ChangeReason.DELIVERY_LATER)
    old_shipping, new_shipping = dict(old.shipping), dict(new.shipping)
    if any(new_shipping.get(region) != amount for region, amount in old_shipping.items()):
        reasons.append(ChangeReason.SHIPPING_CHANGED)
    return reasons
