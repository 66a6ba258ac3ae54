"""Who is looking: the viewer of a campaign, derived from the verified principal (or its absence)."""

from __future__ import annotations

from dataclasses import dataclass

from services.campaigns.models import Campaign
from shared.auth import Principal, Role


@dataclass(frozen=True, slots=True)
class Viewer:
    principal: Principal | None

    @property
    def subject(self) -> str | None:
        return self.principal.subject if self.principal else None

    @property
    def is_operator(self) -> bool:
        return self.principal is not None and self.principal.is_operator

    @property
    def is_service(self) -> bool:
        return self.principal is not None and self.principal.is_service

    def owns(self, campaign: Campaign) -> bool:
        return (
            self.principal is not None
            and not self.principal.is_service
            and self.principal.has(Role.CREATOR)
            and campaign.creator_id == self.principal.subject
        )

    def sees_everything(self, campaign: Campaign) -> bool:
        """The campaign's creator, operators and other services see exact figures and unlaunched campaigns."""
        return self.is_service or self.is_operator or self.owns(campaign)

    def is_audited_reader(self, campaign: Campaign) -> bool:
        """Exact figures read by an operator (who is not the creator) are recorded in the audit log."""
        return self.is_operator and not self.owns(campaign)
