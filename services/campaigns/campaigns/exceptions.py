from __future__ import annotations

import uuid

from shared.errors import Conflict, NotFound, PreconditionFailed


class CampaignNotFound(NotFound):
    code = "campaign_not_found"

    def __init__(self, campaign_id: uuid.UUID) -> None:
        super().__init__(f"No campaign {campaign_id} is visible to you.")


class RevisionMismatch(PreconditionFailed):
    code = "revision_mismatch"

    def __init__(self, current: int) -> None:
        super().__init__(
            "The resource changed since you read it; fetch it again and retry with its new ETag.",
            headers={"ETag": f'"{current}"'},
        )


class FieldLocked(Conflict):
    code = "field_locked"

    def __init__(self, fields: list[str], status: str) -> None:
        super().__init__(
            f"These fields cannot change while the campaign is {status}: {', '.join(sorted(fields))}.",
            extra={"fields": sorted(fields)},
        )


class CampaignNotEditable(Conflict):
    code = "campaign_not_editable"

    def __init__(self, status: str) -> None:
        super().__init__(f"A campaign that is {status} cannot be edited.")
