from __future__ import annotations

import uuid

from shared.errors import Conflict, NotFound


class TierNotFound(NotFound):
    code = "tier_not_found"

    def __init__(self, tier_id: uuid.UUID) -> None:
        super().__init__(f"No tier {tier_id} in this campaign.")


class TierVersionNotFound(NotFound):
    code = "tier_version_not_found"

    def __init__(self, tier_id: uuid.UUID, version: int) -> None:
        super().__init__(f"Tier {tier_id} has no version {version}.")


class TiersLocked(Conflict):
    code = "tiers_locked"

    def __init__(self, status: str) -> None:
        super().__init__(f"Tiers cannot be changed while the campaign is {status}.")


class TierInUse(Conflict):
    code = "tier_in_use"

    def __init__(self) -> None:
        super().__init__("A tier of a launched campaign cannot be deleted; backers may hold its terms.")


class QuantityBelowClaimed(Conflict):
    code = "quantity_below_claimed"

    def __init__(self) -> None:
        super().__init__("The quantity limit cannot go below what backers have already claimed.")
