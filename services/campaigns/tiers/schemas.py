from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from services.campaigns.disclosure.schemas import TierAvailability
from shared.money import Amount, PositiveAmount

DELIVERY_MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


class TierItem(BaseModel):
    """Something the backer receives."""

    name: str = Field(min_length=1, max_length=200, examples=["Hardcover book"])
    quantity: int = Field(default=1, ge=1, le=100_000)
    description: str | None = Field(default=None, max_length=2000)


class ShippingRate(BaseModel):
    """Where the reward ships and what shipping costs there."""

    region: str = Field(
        pattern=r"^[A-Z0-9_-]{2,32}$",
        description="An ISO-3166 alpha-2 country (`FR`) or a region name of your own (`EU`, `WORLDWIDE`).",
        examples=["US"],
    )
    shipping_amount: Amount


def _unique_names(items: list[TierItem] | None) -> list[TierItem] | None:
    if items is not None and len({item.name for item in items}) != len(items):
        raise ValueError("item names must be unique within a tier")
    return items


def _unique_regions(rates: list[ShippingRate] | None) -> list[ShippingRate] | None:
    if rates is not None and len({rate.region for rate in rates}) != len(rates):
        raise ValueError("each shipping region may appear once")
    return rates


class TierCreate(BaseModel):
    """A reward tier. Its terms (title, description, price, items, delivery month, shipping) become version 1."""

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    price_amount: PositiveAmount = Field(description="Minimum pledge for this reward, in minor units.")
    items: list[TierItem] = Field(min_length=1, max_length=100)
    estimated_delivery: str = Field(pattern=DELIVERY_MONTH, description="Estimated delivery month, `YYYY-MM`.")
    shipping: list[ShippingRate] = Field(
        default_factory=list, max_length=250, description="Empty for rewards that do not ship."
    )
    quantity_limit: PositiveInt | None = Field(default=None, description="How many can be claimed in total.")
    per_backer_limit: PositiveInt | None = Field(default=None, description="How many one backer may claim.")
    position: int = Field(default=0, ge=0, le=10_000, description="Display order.")

    _items = field_validator("items")(_unique_names)
    _shipping = field_validator("shipping")(_unique_regions)


class TierUpdate(BaseModel):
    """A partial update, with `If-Match`. On a live campaign a change of terms creates a new version; send
    `quantity_limit: null` or `per_backer_limit: null` to remove a limit."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    price_amount: PositiveAmount | None = None
    items: list[TierItem] | None = Field(default=None, min_length=1, max_length=100)
    estimated_delivery: str | None = Field(default=None, pattern=DELIVERY_MONTH)
    shipping: list[ShippingRate] | None = Field(default=None, max_length=250)
    quantity_limit: PositiveInt | None = None
    per_backer_limit: PositiveInt | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)

    _items = field_validator("items")(_unique_names)
    _shipping = field_validator("shipping")(_unique_regions)


class TierVersion(BaseModel):
    """One immutable version of a tier's terms. Versions stay readable forever."""

    model_config = ConfigDict(from_attributes=True)

    tier_id: uuid.UUID
    campaign_id: uuid.UUID
    version: int
    title: str
    description: str
    price_amount: int
    currency: str
    items: list[TierItem]
    estimated_delivery: str
    shipping: list[ShippingRate]
    content_hash: str = Field(description="SHA-256 of the canonical terms: what a backer's snapshot refers to.")
    material: bool = Field(description="True when this version changed the previous one materially.")
    change_reasons: list[str] = Field(
        description="`price_increased`, `items_removed`, `items_changed`, `delivery_later`, `shipping_changed`."
    )
    created_at: datetime


class Tier(BaseModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    position: int
    revision: int = Field(description="Increases on every edit; the `ETag` header is this value in quotes.")
    current_version: int
    terms: TierVersion = Field(description="The current version of the terms.")
    quantity_limit: int | None
    per_backer_limit: int | None
    availability: TierAvailability
    created_at: datetime
    updated_at: datetime
