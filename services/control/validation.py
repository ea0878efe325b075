"""Write-time validation of a configuration: its destination's schema, the account filter,
the credential it names and the users it notifies. Every problem is reported at once."""

from __future__ import annotations

from typing import Any

import pydantic

from services.control.errors import pydantic_details, validation_error
from services.control.users import UserDirectory
from shared.contracts import Destination, IntegrationConfig, parse_config
from shared.credentials import CredentialType, StoredCredential
from shared.filters import FilterSyntaxError, parse_filter

DESTINATIONS = {d.value for d in Destination}
FILTER_FIELD = "entityConfig.accountFilter"


def credential_type_for(destination: Destination) -> CredentialType:
    """STRIPE and STRIPE_TEST take a STRIPE credential, PADDLE_SANDBOX a PADDLE one, ..."""
    return CredentialType(destination.family.upper())


def filter_details(expression: str) -> list[dict[str, Any]]:
    try:
        parse_filter(expression)
    except FilterSyntaxError as exc:
        return [
            {
                "field": FILTER_FIELD,
                "message": str(exc),
                "position": exc.position,
                "line": exc.line,
                "column": exc.column,
                "expected": exc.expected,
            }
        ]
    return []


def credential_problem(
    destination: Destination, credential_id: str, stored: StoredCredential | None
) -> str | None:
    if stored is None:
        return f"integration credential {credential_id!r} does not exist; create it first"
    wanted = credential_type_for(destination)
    if stored.type != wanted:
        return (
            f"integration credential {credential_id!r} is a {stored.type.value} credential; "
            f"a {destination.value} configuration needs a {wanted.value} credential"
        )
    return None


def parse_checked(
    data: dict[str, Any],
    credentials: dict[str, StoredCredential],
    users: UserDirectory,
) -> IntegrationConfig:
    details: list[dict[str, Any]] = []
    entity = data.get("entityConfig")
    expression = entity.get("accountFilter") if isinstance(entity, dict) else None
    if isinstance(expression, str) and expression.strip():
        details += filter_details(expression)
    config: IntegrationConfig | None = None
    try:
        config = parse_config(data)
    except pydantic.ValidationError as exc:
        # The filter error is already reported with its position; skip pydantic's copy.
        details += [d for d in pydantic_details(exc, DESTINATIONS) if d["field"] != FILTER_FIELD]
    if config is not None:
        cred_id = config.integration_credentials_id
        if cred_id:
            problem = credential_problem(config.destination, cred_id, credentials.get(cred_id))
            if problem:
                details.append({"field": "integrationCredentialsId", "message": problem})
        for index, user_id in enumerate(config.disabled_notification_user_ids):
            if not users.is_known(user_id):
                details.append(
                    {
                        "field": f"disabledNotificationUserIds.{index}",
                        "message": f"unknown user {user_id!r}: use a user id from the users "
                        "directory or an email address",
                    }
                )
    if details or config is None:
        raise validation_error(
            f"the configuration has {len(details)} problem(s); see details", details
        )
    return config
