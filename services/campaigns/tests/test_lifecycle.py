"""The lifecycle table itself: the whitelist is exactly this, and capabilities come from it."""

from __future__ import annotations

import itertools

from services.campaigns.lifecycle import (
    CAPABILITIES,
    TRANSITIONS,
    CampaignAction,
    allowed_actions,
    capabilities,
    next_status,
)
from services.campaigns.models import CampaignStatus as S

EXPECTED = {
    ("draft", "submit"): "submitted",
    ("changes_requested", "submit"): "submitted",
    ("submitted", "start_review"): "in_review",
    ("in_review", "approve"): "approved",
    ("in_review", "request_changes"): "changes_requested",
    ("in_review", "reject"): "rejected",
    ("approved", "return_to_review"): "submitted",
    ("approved", "launch"): "live",
    ("live", "suspend"): "suspended",
    ("suspended", "reinstate"): "live",
    ("live", "close_succeeded"): "succeeded",
    ("live", "close_failed"): "failed",
    ("draft", "cancel"): "canceled",
    ("submitted", "cancel"): "canceled",
    ("changes_requested", "cancel"): "canceled",
    ("approved", "cancel"): "canceled",
    ("live", "cancel"): "canceled",
    ("suspended", "cancel"): "canceled",
}


def test_every_pair_outside_the_whitelist_is_refused() -> None:
    for status, action in itertools.product(S, CampaignAction):
        assert next_status(status, action) == EXPECTED.get((status.value, action.value)), (status, action)
    assert len(TRANSITIONS) == len(EXPECTED)


def test_terminal_states_allow_nothing() -> None:
    for status in (S.SUCCEEDED, S.FAILED, S.CANCELED, S.REJECTED):
        assert allowed_actions(status) == []
        assert capabilities(status).closed


def test_capabilities_come_from_the_table() -> None:
    assert [s for s in S if capabilities(s).accepts_pledges] == [S.LIVE]
    assert [s for s in S if capabilities(s).may_charge] == [S.SUCCEEDED]
    assert {s for s in S if capabilities(s).terms_editable} == {S.DRAFT, S.CHANGES_REQUESTED, S.APPROVED, S.LIVE}
    assert set(CAPABILITIES) == set(S)


def test_allowed_actions_are_only_those_a_caller_can_request() -> None:
    assert allowed_actions(S.LIVE) == [CampaignAction.SUSPEND, CampaignAction.CANCEL]
    assert allowed_actions(S.APPROVED) == [CampaignAction.LAUNCH, CampaignAction.CANCEL]
