"""The campaign lifecycle as data: which action moves which state where, who may take it, and what each state
allows. Code asks these tables (``next_status``, ``capabilities``) instead of comparing states inline."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.campaigns.models import ActorRole, CampaignStatus

S = CampaignStatus


class CampaignAction(StrEnum):
    SUBMIT = "submit"
    START_REVIEW = "start_review"
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    REJECT = "reject"
    RETURN_TO_REVIEW = "return_to_review"  # a material edit of an approved campaign
    LAUNCH = "launch"
    SUSPEND = "suspend"
    REINSTATE = "reinstate"
    CANCEL = "cancel"
    CLOSE_SUCCEEDED = "close_succeeded"
    CLOSE_FAILED = "close_failed"


A = CampaignAction

TRANSITIONS: dict[tuple[CampaignStatus, CampaignAction], CampaignStatus] = {
    (S.DRAFT, A.SUBMIT): S.SUBMITTED,
    (S.CHANGES_REQUESTED, A.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, A.START_REVIEW): S.IN_REVIEW,
    (S.IN_REVIEW, A.APPROVE): S.APPROVED,
    (S.IN_REVIEW, A.REQUEST_CHANGES): S.CHANGES_REQUESTED,
    (S.IN_REVIEW, A.REJECT): S.REJECTED,
    (S.APPROVED, A.RETURN_TO_REVIEW): S.SUBMITTED,
    (S.APPROVED, A.LAUNCH): S.LIVE,
    (S.LIVE, A.SUSPEND): S.SUSPENDED,
    (S.SUSPENDED, A.REINSTATE): S.LIVE,
    (S.LIVE, A.CLOSE_SUCCEEDED): S.SUCCEEDED,
    (S.LIVE, A.CLOSE_FAILED): S.FAILED,
    (S.DRAFT, A.CANCEL): S.CANCELED,
    (S.SUBMITTED, A.CANCEL): S.CANCELED,
    (S.CHANGES_REQUESTED, A.CANCEL): S.CANCELED,
    (S.APPROVED, A.CANCEL): S.CANCELED,
    (S.LIVE, A.CANCEL): S.CANCELED,
    (S.SUSPENDED, A.CANCEL): S.CANCELED,
}

# Who may take each action. The creator acts on their own campaign only; an operator never reviews a
# campaign they created (checked by the vetting service).
ACTORS: dict[CampaignAction, frozenset[ActorRole]] = {
    A.SUBMIT: frozenset({ActorRole.CREATOR}),
    A.START_REVIEW: frozenset({ActorRole.OPERATOR}),
    A.APPROVE: frozenset({ActorRole.OPERATOR}),
    A.REQUEST_CHANGES: frozenset({ActorRole.OPERATOR}),
    A.REJECT: frozenset({ActorRole.OPERATOR}),
    A.RETURN_TO_REVIEW: frozenset({ActorRole.CREATOR}),
    A.LAUNCH: frozenset({ActorRole.CREATOR}),
    A.SUSPEND: frozenset({ActorRole.OPERATOR}),
    A.REINSTATE: frozenset({ActorRole.OPERATOR}),
    A.CANCEL: frozenset({ActorRole.CREATOR, ActorRole.OPERATOR}),
    A.CLOSE_SUCCEEDED: frozenset({ActorRole.SYSTEM}),
    A.CLOSE_FAILED: frozenset({ActorRole.SYSTEM}),
}


@dataclass(frozen=True, slots=True)
class Capabilities:
    accepts_pledges: bool = False
    terms_editable: bool = False
    may_charge: bool = False
    may_refund: bool = False
    closed: bool = False


CAPABILITIES: dict[CampaignStatus, Capabilities] = {
    S.DRAFT: Capabilities(terms_editable=True),
    S.SUBMITTED: Capabilities(),
    S.IN_REVIEW: Capabilities(),
    S.CHANGES_REQUESTED: Capabilities(terms_editable=True),
    S.APPROVED: Capabilities(terms_editable=True),
    S.REJECTED: Capabilities(closed=True),
    S.LIVE: Capabilities(accepts_pledges=True, terms_editable=True, may_refund=True),
    S.SUSPENDED: Capabilities(may_refund=True),
    S.SUCCEEDED: Capabilities(may_charge=True, may_refund=True, closed=True),
    S.FAILED: Capabilities(may_refund=True, closed=True),
    S.CANCELED: Capabilities(may_refund=True, closed=True),
}


def capabilities(status: CampaignStatus) -> Capabilities:
    return CAPABILITIES[status]


def next_status(status: CampaignStatus, action: CampaignAction) -> CampaignStatus | None:
    """The state ``action`` leads to from ``status``, or None if the whitelist does not allow it."""
    return TRANSITIONS.get((status, action))


# Actions a person asks for through a route; the others happen as consequences (an edit, the deadline).
REQUESTABLE = frozenset(action for action, roles in ACTORS.items() if roles - {ActorRole.SYSTEM}) - {A.RETURN_TO_REVIEW}


def allowed_actions(status: CampaignStatus) -> list[CampaignAction]:
    """The actions a caller could request next from ``status`` (their role still applies)."""
    return [action for (source, action) in TRANSITIONS if source == status and action in REQUESTABLE]
