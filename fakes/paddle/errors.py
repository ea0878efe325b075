"""Paddle's error shape: ``{"error": {type, code, detail, documentation_url, errors}, "meta":
{request_id}}``."""

from __future__ import annotations

from typing import Any

DOCS = "https://developer.paddle.com/errors"


class PaddleError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        errors: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {
            "type": "api_error" if self.status >= 500 else "request_error",
            "code": self.code,
            "detail": self.detail,
            "documentation_url": f"{DOCS}/shared/{self.code}",
        }
        if self.errors:
            error["errors"] = [{"field": f, "message": m} for f, m in self.errors]
        return {"error": error, "meta": {"request_id": request_id}}


def invalid(errors: list[tuple[str, str]]) -> PaddleError:
    return PaddleError(
        400, "invalid_field", "Invalid request.", errors=errors
    )  # Paddle's generic body-validation answer


def bad_request(code: str, detail: str, field: str | None = None) -> PaddleError:
    return PaddleError(400, code, detail, errors=[(field, detail)] if field else None)


def not_found(what: str, ident: str) -> PaddleError:
    return PaddleError(404, "not_found", f"{what} {ident} not found.")
