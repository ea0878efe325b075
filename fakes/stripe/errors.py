"""Stripe's error envelope: ``{"error": {type, code, message, param, doc_url}}``."""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An error answered with Stripe's JSON error shape.

    ``stage`` says whether the error happened before the endpoint began executing
    (``"pre"``: auth, rate limits, parameter validation; Stripe's idempotency layer
    does not save those) or during execution (``"exec"``: saved and replayed).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        stage: str = "exec",
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.stage = stage
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            err["code"] = self.code
            err["doc_url"] = "https://stripe.com/docs/error-codes/" + self.code.replace("_", "-")
        if self.param is not None:
            err["param"] = self.param
        err.update(self.extra)
        return {"error": err}


def invalid(
    message: str, *, param: str | None = None, code: str | None = None, stage: str = "pre"
) -> StripeError:
    """A 400 ``invalid_request_error`` (parameter validation unless ``stage`` says otherwise)."""
    return StripeError(400, message, code=code, param=param, stage=stage)


def missing_resource(kind: str, ident: str, *, param: str, status: int = 404) -> StripeError:
    """``No such <kind>: '<id>'`` (404 for a path id, 400 for an id passed as a parameter)."""
    return StripeError(
        status, f"No such {kind}: '{ident}'", code="resource_missing", param=param, stage="exec"
    )


def not_editable(message: str, *, param: str | None = None) -> StripeError:
    return StripeError(400, message, code="invoice_not_editable", param=param, stage="exec")
