"""Request parsing shared by the handlers: JSON bodies, query values, page tokens."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from services.control.errors import ApiError, validation_error
from shared import safejson
from shared.store.models import Cursor

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


async def json_object(request: web.Request, required: bool = True) -> dict[str, Any]:
    if not request.can_read_body:
        if required:
            raise validation_error("a JSON object body is required")
        return {}
    try:
        body = safejson.loads(await request.read())
    except safejson.JsonInputError as exc:
        raise validation_error(f"the body is not acceptable JSON: {exc}") from None
    if body is None and not required:
        return {}
    if not isinstance(body, dict):
        raise validation_error("the body must be a JSON object")
    return body


def page_size(request: web.Request) -> int:
    raw = request.query.get("pageSize")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise validation_error(
            f"pageSize must be a whole number from 1 to {MAX_PAGE_SIZE}",
            [{"field": "pageSize", "message": f"a whole number from 1 to {MAX_PAGE_SIZE}"}],
        )
    return size


def one_of(request: web.Request, name: str, allowed: Iterable[str]) -> str | None:
    """An optional query value that must be one of `allowed` (an enum filter)."""
    raw = request.query.get(name)
    choices = sorted(allowed)
    if raw is not None and raw not in choices:
        raise validation_error(
            f"{name} must be one of " + ", ".join(choices),
            [{"field": name, "message": "one of " + ", ".join(choices)}],
        )
    return raw


def boolean(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise validation_error(
        f"{name} must be true or false", [{"field": name, "message": "true or false"}]
    )


def timestamp(value: str, name: str) -> datetime:
    """ISO 8601; a time without an offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise validation_error(
            f"{name} must be an ISO 8601 time such as 2026-01-31T00:00:00Z",
            [{"field": name, "message": "an ISO 8601 time"}],
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def query_time(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    return timestamp(raw, name) if raw else None


def _bad_token() -> ApiError:
    return validation_error("nextToken is not valid: pass the value a previous page returned")


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode()


def _unb64(token: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad_token() from None
    if not isinstance(data, dict):
        raise _bad_token()
    return data


def encode_cursor(cursor: Cursor | None) -> str | None:
    if cursor is None:
        return None
    return _b64({"t": cursor[0].isoformat(), "i": cursor[1]})


def decode_cursor(request: web.Request) -> Cursor | None:
    token = request.query.get("nextToken")
    if not token:
        return None
    data = _unb64(token)
    try:
        return datetime.fromisoformat(str(data["t"])), str(data["i"])
    except (KeyError, ValueError):
        raise _bad_token() from None


def encode_after_id(last_id: str | None) -> str | None:
    return _b64({"a": last_id}) if last_id is not None else None


def decode_after_id(request: web.Request) -> str | None:
    token = request.query.get("nextToken")
    if not token:
        return None
    after = _unb64(token).get("a")
    if not isinstance(after, str):
        raise _bad_token()
    return after


def page_by_id(
    items: list[Any], request: web.Request, key: str = "id"
) -> tuple[list[Any], str | None]:
    """Page a list already sorted by id (configurations, credentials, mappings)."""
    size = page_size(request)
    after = decode_after_id(request)
    if after is not None:
        items = [i for i in items if getattr(i, key) > after]
    page = items[:size]
    token = encode_after_id(getattr(page[-1], key)) if len(items) > size else None
    return page, token
