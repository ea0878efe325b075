"""The disable notification email, sent with aiosmtplib. A failure is counted and logged
per recipient; it never propagates (the configuration is already disabled)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from email.message import EmailMessage

import aiosmtplib

from services.monitor import metrics as m
from services.monitor.redact import redact
from services.monitor.settings import MonitorSettings
from services.monitor.state import ConfigErrorState
from services.monitor.users import Recipient, UnknownUser, UsersDirectory
from shared.logging import get_logger

log = get_logger("monitor")


@dataclass(frozen=True, slots=True)
class DisabledNotice:
    config_id: str
    config_name: str
    destination: str
    state: ConfigErrorState
    threshold: int


def compose(notice: DisabledNotice, to: Recipient, sender: str) -> EmailMessage:
    s = notice.state
    label = f"{notice.config_name} ({notice.config_id})" if notice.config_name else notice.config_id
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to.email
    msg["Subject"] = f"billsync: integration configuration {label} was disabled"
    greeting = f"Hello {to.name}," if to.name else "Hello,"
    first = s.first_error_at or s.last_error_at
    since = first.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if first else "<time>"
    msg.set_content(
        f"{greeting}\n\n"
        f"billsync disabled the integration configuration {label} "
        f"(destination {notice.destination}) after {s.successive_errors} successive errors "
        f"(threshold {notice.threshold}).\n\n"
        f"Last error ({s.last_event_type or 'unknown'}): {redact(s.last_error) or '-'}\n"
        f"Last run: {s.last_run_id or '-'}    Bill: {s.last_bill_id or '-'}\n"
        f"At: {s.last_error_at.isoformat() if s.last_error_at else '-'}\n\n"
        "No bills are sent to this destination until the configuration is enabled again.\n"
        "Fix the cause, re-enable it with `billsync enable "
        f"{notice.config_id}` (this resets the error count), then send the bills that failed "
        f"meanwhile with `billsync resend --config {notice.config_id} --since {since}`.\n"
    )
    return msg


class Mailer:
    def __init__(self, settings: MonitorSettings, users: UsersDirectory) -> None:
        self._s = settings
        self._users = users

    async def notify(self, notice: DisabledNotice, user_ids: list[str]) -> int:
        """Email every named user; returns how many were sent."""
        sent = 0
        for user_id in dict.fromkeys(user_ids):  # de-duplicated, order kept
            try:
                recipient = self._users.resolve(user_id)
            except UnknownUser as exc:
                m.NOTIFICATION_FAILURES.labels("unknown_user").inc()
                log.warning(
                    "notification_unknown_user",
                    integration_config_id=notice.config_id,
                    user_id=user_id,
                    error=str(exc),
                )
                continue
            if await self._send(compose(notice, recipient, self._s.smtp_from), notice, user_id):
                sent += 1
        return sent

    async def _send(self, msg: EmailMessage, notice: DisabledNotice, user_id: str) -> bool:
        s = self._s
        try:
            await aiosmtplib.send(
                msg,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                start_tls=s.smtp_starttls,
                use_tls=s.smtp_use_tls,
                timeout=s.smtp_timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            m.NOTIFICATION_FAILURES.labels("smtp").inc()
            log.error(
                "notification_failed",
                integration_config_id=notice.config_id,
                user_id=user_id,
                error=f"{type(exc).__name__}: {str(exc)[:300]}",
            )
            return False
        m.NOTIFICATIONS_SENT.inc()
        log.info("notification_sent", integration_config_id=notice.config_id, user_id=user_id)
        return True
