"""One error shape for every refusal: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import pydantic


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


def validation_error(message: str, details: list[dict[str, Any]] | None = None) -> ApiError:
    return ApiError(400, "validation_error", message, details)


_PLAIN_ID = re.compile(r"[A-Za-z0-9_.:@+\-]{1,200}")


def quoted_id(key: str) -> str:
    """An id for a message, quoted; anything that is not id-shaped (a pasted secret, a
    megabyte of text, control characters) is named, not echoed."""
    return repr(key) if _PLAIN_ID.fullmatch(key) else "(the id given)"


def not_found(kind: str, key: str) -> ApiError:
    return ApiError(404, "not_found", f"{kind} {quoted_id(key)} does not exist")


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


def provider_error(message: str) -> ApiError:
    return ApiError(502, "provider_error", message)


_FRIENDLY = {
    "extra_forbidden": "unknown field: remove it or check its spelling (names are camelCase)",
    "missing": "required field is missing",
}


def pydantic_details(
    exc: pydantic.ValidationError, tags: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Field paths in wire (camelCase) form with messages that say what to fix. The input
    values are never echoed: a credential's secret could be one of them."""
    details: list[dict[str, Any]] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in tags:  # the discriminated union's tag (e.g. STRIPE) is noise
            loc = loc[1:]
        if err["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            loc.append(str(err.get("ctx", {}).get("discriminator", "")).strip("'"))
        message = _FRIENDLY.get(err["type"], err["msg"])
        if message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        details.append({"field": ".".join(loc) or "(body)", "message": message})
    return details
