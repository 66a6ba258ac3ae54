"""Errors rendered exactly as Stripe renders them: ``{"error": {...}}`` plus an HTTP status."""

from __future__ import annotations

from typing import Any

DOC_URL_BASE = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An API error. ``extra`` holds already-rendered objects (payment_intent, setup_intent...)
    that Stripe attaches to the error body; keys are emitted in alphabetical order like Stripe."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        log_url: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.log_url = log_url

    def to_body(self, request_log_url: str | None) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code is not None:
            error["code"] = self.code
            error.setdefault("doc_url", DOC_URL_BASE + self.code.replace("_", "-"))
        if self.param is not None:
            error["param"] = self.param
        if request_log_url and self.log_url:
            error["request_log_url"] = request_log_url
        error.update(self.extra)
        return {"error": dict(sorted(error.items()))}


def invalid(message: str, *, param: str | None = None, code: str | None = None, **extra: Any) -> StripeError:
    return StripeError(400, message, param=param, code=code, extra=extra)


def missing(kind: str, obj_id: str, *, param: str | None, status: int = 404) -> StripeError:
    """Stripe's ``resource_missing``. The status is 404 for the object named by the URL and
    400 for one named by a body parameter (recorded: attach to a deleted customer is a 400)."""
    return StripeError(status, f"No such {kind}: '{obj_id}'", code="resource_missing", param=param)


def unexpected_state(message: str, *, code: str, param: str | None = None, **extra: Any) -> StripeError:
    return StripeError(400, message, code=code, param=param, extra=extra)
