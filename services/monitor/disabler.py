"""Disabling a configuration goes through the control plane, the single writer of
configurations: a port, and its HTTP adapter."""

from __future__ import annotations

from typing import Protocol

import aiohttp

from shared.logging import get_logger

log = get_logger("monitor")


class DisableError(RuntimeError):
    """The control plane did not confirm; `retryable` says whether trying again may help."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ConfigDisabler(Protocol):
    async def disable(self, config_id: str, reason: str) -> None:
        """Idempotent: disabling a disabled configuration succeeds."""


class HttpConfigDisabler:
    """`POST {base}/integrationconfigs/{id}/disable` with the admin bearer token."""

    def __init__(self, base_url: str, admin_token: str | None, timeout: float = 10.0) -> None:
        self._base = base_url.rstrip("/")
        self._token = admin_token
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def disable(self, config_id: str, reason: str) -> None:
        if not self._token:
            raise DisableError(
                "no control-plane admin token configured (BILLSYNC_MONITOR_ADMIN_TOKEN)",
                retryable=False,
            )
        url = f"{self._base}/integrationconfigs/{config_id}/disable"
        headers = {"Authorization": f"Bearer {self._token}"}
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(url, json={"reason": reason}, headers=headers) as resp,
            ):
                if resp.status < 300:
                    return
                text = (await resp.text())[:300]
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DisableError(f"control plane unreachable: {exc!r}", retryable=True) from exc
        # 404: the configuration is gone; 401/403: a wrong token will not fix itself soon,
        # but an operator may fix it, so those are retried (slowly) too.
        raise DisableError(
            f"control plane answered {resp.status}: {text}", retryable=resp.status != 404
        )
