from __future__ import annotations

import uuid

from shared.errors import Conflict, Forbidden, NotFound, ServiceUnavailable, UnprocessableContent


class RefundBatchNotFound(NotFound):
    code = "refund_batch_not_found"

    def __init__(self, batch_id: uuid.UUID) -> None:
        super().__init__(f"No refund batch {batch_id} is visible to you.")


class InvalidBatchState(Conflict):
    code = "invalid_batch_state"

    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"A batch that is {status} cannot be {action}.", extra={"batch_status": status})


class BackerRefundNotCancelable(Conflict):
    """A backer's own refund (their canceled pledge already shows it pending) is owed: it can be paused, not
    canceled."""

    code = "backer_refund_not_cancelable"

    def __init__(self) -> None:
        super().__init__("A backer's own refund cannot be canceled; pause it if it must wait.")


class SecondApproverRequired(Forbidden):
    code = "second_approver_required"

    def __init__(self) -> None:
        super().__init__(
            "This batch is above the approval threshold: another operator than its creator must approve it."
        )


class NotApproved(Conflict):
    code = "batch_not_approved"

    def __init__(self) -> None:
        super().__init__("Approve the batch before starting it.")


class BatchTooLarge(UnprocessableContent):
    code = "batch_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"A batch holds at most {limit} pledges; narrow the selection.")


class PledgesUnavailable(ServiceUnavailable):
    code = "pledges_unavailable"

    def __init__(self) -> None:
        super().__init__("The pledges service did not answer; nothing was created. Retry with the same key.")


class CampaignsUnavailable(ServiceUnavailable):
    code = "campaigns_unavailable"

    def __init__(self) -> None:
        super().__init__("The campaigns service did not answer; nothing was created. Retry with the same key.")


class InvalidSelection(UnprocessableContent):
    code = "invalid_selection"

    def __init__(self, detail: str | None) -> None:
        super().__init__(f"The pledges service refused this selection: {detail or 'invalid filter'}.")
