"""A small synchronous client for the control-plane API (used by the CLI).

Configured with BILLSYNC_CONTROL_URL and BILLSYNC_CONTROL_TOKEN; the token is read from
the environment only, never from the command line (it would show in `ps`)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any


class ControlError(RuntimeError):
    def __init__(self, status: int, code: str, message: str, details: list[Any]) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def describe(self) -> str:
        lines = [f"error ({self.status} {self.code}): {self.message}"]
        for d in self.details:
            if isinstance(d, dict):
                lines.append(f"  {d.get('field', '')}: {d.get('message', '')}")
        return "\n".join(lines)


class ControlClient:
    def __init__(self, base_url: str, token: str, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = timeout

    @classmethod
    def from_env(cls) -> ControlClient | None:
        url = os.environ.get("BILLSYNC_CONTROL_URL")
        if not url:
            return None
        token = os.environ.get("BILLSYNC_CONTROL_TOKEN", "")
        if not token:
            raise ControlError(0, "unauthorized", "set BILLSYNC_CONTROL_TOKEN", [])
        return cls(url, token)

    def request(
        self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None
    ) -> Any:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.base_url + urllib.parse.quote(path)
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise _error(exc.code, exc.read()) from None
        except urllib.error.URLError as exc:
            raise ControlError(0, "unreachable", f"{self.base_url}: {exc.reason}", []) from None
        return json.loads(raw) if raw else None

    def pages(
        self, path: str, query: dict[str, Any] | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list (or the first `limit`)."""
        params = dict(query or {})
        seen = 0
        while True:
            page = self.request("GET", path, query=params)
            for item in page["data"]:
                yield item
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if not page.get("nextToken"):
                return
            params["nextToken"] = page["nextToken"]


def _error(status: int, raw: bytes) -> ControlError:
    try:
        error = json.loads(raw)["error"]
        return ControlError(status, error["code"], error["message"], error.get("details", []))
    except (ValueError, KeyError, TypeError):
        return ControlError(status, "http_error", raw.decode("utf-8", "replace")[:500], [])
