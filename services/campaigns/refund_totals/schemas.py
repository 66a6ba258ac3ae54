from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from shared.db import INTEGER_MAX
from shared.money import Amount, Currency


class PledgeRefunded(BaseModel):
    """The payload of ``pledge.refunded`` (the pledges service's contract): published in the transaction that
    changes the sum of a pledge's succeeded refunds. ``refunded_amount`` is the pledge's cumulative total, not
    the step; ``revision`` numbers the pledge's changes (absent from events published before it existed)."""

    model_config = ConfigDict(extra="ignore")

    pledge_id: uuid.UUID
    campaign_id: uuid.UUID
    currency: Currency
    charged_amount: Amount
    refunded_amount: Amount
    revision: int | None = Field(default=None, ge=1, le=INTEGER_MAX)
