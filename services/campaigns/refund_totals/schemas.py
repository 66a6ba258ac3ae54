from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict

from shared.money import Amount, Currency


class PledgeRefunded(BaseModel):
    """The payload of ``pledge.refunded`` (the pledges service's contract): published in the transaction that
    raises a pledge's succeeded refunds. ``refunded_amount`` is the pledge's cumulative total, not the step."""

    model_config = ConfigDict(extra="ignore")

    pledge_id: uuid.UUID
    campaign_id: uuid.UUID
    currency: Currency
    charged_amount: Amount
    refunded_amount: Amount
