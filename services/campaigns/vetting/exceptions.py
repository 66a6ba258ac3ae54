from __future__ import annotations

from typing import Any

from services.campaigns.lifecycle import CampaignAction, allowed_actions
from services.campaigns.models import CampaignStatus
from shared.errors import Conflict, Forbidden, UnprocessableContent


class TransitionNotAllowed(Conflict):
    code = "transition_not_allowed"

    def __init__(self, status: CampaignStatus, action: CampaignAction) -> None:
        allowed = [a.value for a in allowed_actions(status)]
        super().__init__(
            f"A campaign that is {status} cannot {action.replace('_', ' ')}.",
            extra={"status": status.value, "action": action.value, "allowed_actions": allowed},
        )


class ActionNotPermitted(Forbidden):
    code = "action_not_permitted"


class NotCampaignCreator(Forbidden):
    code = "not_campaign_creator"

    def __init__(self) -> None:
        super().__init__("Only the campaign's creator can do this.")


class SelfReviewForbidden(Forbidden):
    code = "self_review_forbidden"

    def __init__(self) -> None:
        super().__init__("An operator cannot review, decide on or moderate a campaign they created.")


class SubmissionIncomplete(UnprocessableContent):
    code = "submission_incomplete"

    def __init__(self, missing: list[dict[str, Any]]) -> None:
        fields = ", ".join(item["field"] for item in missing)
        super().__init__(
            f"The campaign cannot be submitted yet; missing or invalid: {fields}.", extra={"missing": missing}
        )


class ChecklistIncomplete(Conflict):
    code = "checklist_incomplete"

    def __init__(self, missing: list[str], failed: list[str]) -> None:
        super().__init__(
            "Every checklist item must be recorded as passed in this review round before approval.",
            extra={"missing_items": missing, "failed_items": failed},
        )


class DeadlineOutOfRange(Conflict):
    code = "deadline_out_of_range"


class ReviewNotInProgress(Conflict):
    code = "review_not_in_progress"

    def __init__(self, status: CampaignStatus) -> None:
        super().__init__(f"Checklist items are recorded while a campaign is in_review; this one is {status}.")
