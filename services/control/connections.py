"""Whether a configuration's credential works: verified when it is connected (attached or
through OAuth) and on demand, the outcome kept in the control plane's database.

Status, for the credential version attached now:
  NOT_CONNECTED  no credential, or the wrong kind
  UNVERIFIED     not checked since it was attached or rotated (POST .../connection/verify)
  FAILED         the last check failed; `reason` says why and what to do
  CONNECTED      the last check passed (or the destination has no verifier: `reason` says)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Column, Integer, String, Table, Text, select

from services.control.context import ControlContext
from services.control.errors import ApiError, provider_error, validation_error
from services.control.validation import credential_problem
from services.control.verifiers import Verification, verifier_for
from shared.contracts import IntegrationConfig
from shared.logging import get_logger
from shared.store.tables import ID, metadata
from shared.store.types import UTCDateTime
from shared.store.upsert import insert_for

log = get_logger(__name__)

connection_checks = Table(
    "connection_checks",
    metadata,
    Column("integration_config_id", String(ID), primary_key=True),
    Column("credential_id", String(ID), nullable=False),
    Column("credential_version", Integer, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("reason", Text),
    Column("checked_at", UTCDateTime, nullable=False),
)


@dataclass(frozen=True)
class Check:
    credential_id: str
    credential_version: int
    ok: bool
    reason: str | None
    checked_at: datetime


async def _save(ctx: ControlContext, config_id: str, check: Check) -> None:
    values = {
        "credential_id": check.credential_id,
        "credential_version": check.credential_version,
        "ok": check.ok,
        "reason": check.reason,
        "checked_at": check.checked_at,
    }
    async with ctx.store.engine.begin() as conn:
        stmt = insert_for(conn, connection_checks).values(integration_config_id=config_id, **values)
        await conn.execute(
            stmt.on_conflict_do_update(
                index_elements=[connection_checks.c.integration_config_id], set_=values
            )
        )


async def _load(ctx: ControlContext, config_id: str) -> Check | None:
    c = connection_checks.c
    async with ctx.store.engine.connect() as conn:
        row = (
            await conn.execute(
                select(connection_checks).where(c.integration_config_id == config_id)
            )
        ).first()
    if row is None:
        return None
    return Check(row.credential_id, row.credential_version, row.ok, row.reason, row.checked_at)


async def verify(ctx: ControlContext, config: IntegrationConfig, credential_id: str) -> Check:
    """Check `credential_id` for `config` and record the outcome. Raises 400 when the
    credential is refused, 502 when the provider could not be asked (nothing recorded)."""
    stored = ctx.credentials.get(credential_id)
    problem = credential_problem(config.destination, credential_id, stored)
    if problem or stored is None:
        raise validation_error(
            problem or "", [{"field": "integrationCredentialsId", "message": problem}]
        )
    verifier = verifier_for(config.destination)
    if verifier is None:
        return Check(credential_id, stored.version, True, None, datetime.now(UTC))
    outcome: Verification = await verifier(ctx.credentials.unsealed(stored), config.destination)
    log.info(
        "credential_verified",
        config_id=config.id,
        credential_id=credential_id,
        credential_version=stored.version,
        ok=outcome.ok,
        retriable=outcome.retriable,
    )
    if outcome.retriable:
        raise provider_error(f"{outcome.reason}; nothing was changed: try again")
    check = Check(credential_id, stored.version, outcome.ok, outcome.reason, datetime.now(UTC))
    await _save(ctx, config.id, check)
    return check


def refusal(check: Check) -> ApiError:
    message = f"the credential was not accepted: {check.reason}"
    return validation_error(message, [{"field": "integrationCredentialsId", "message": message}])


async def record_verified(ctx: ControlContext, config_id: str, credential_id: str) -> None:
    """An OAuth exchange just proved the token (and its mode was checked): no extra call."""
    stored = ctx.credentials.get(credential_id)
    if stored is not None:
        await _save(
            ctx, config_id, Check(credential_id, stored.version, True, None, datetime.now(UTC))
        )


async def status(ctx: ControlContext, config: IntegrationConfig) -> dict[str, Any]:
    cred_id = config.integration_credentials_id
    body: dict[str, Any] = {
        "status": "NOT_CONNECTED",
        "reason": "no credential is attached",
        "integrationCredentialsId": cred_id,
        "lastVerifiedAt": None,
    }
    if not cred_id:
        return body
    stored = ctx.credentials.get(cred_id)
    problem = credential_problem(config.destination, cred_id, stored)
    if problem or stored is None:
        return {**body, "reason": problem}
    check = await _load(ctx, config.id)
    current = (
        check
        if check and (check.credential_id, check.credential_version) == (cred_id, stored.version)
        else None
    )
    if current is not None:
        return {
            **body,
            "status": "CONNECTED" if current.ok else "FAILED",
            "reason": current.reason,
            "lastVerifiedAt": current.checked_at.isoformat(),
        }
    if verifier_for(config.destination) is None:
        return {
            **body,
            "status": "CONNECTED",
            "reason": f"no verification is available for {config.destination.value}",
        }
    return {
        **body,
        "status": "UNVERIFIED",
        "reason": "not verified since the credential was attached or rotated: "
        f"POST /integrationconfigs/{config.id}/connection/verify",
    }
