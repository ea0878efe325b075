"""Write-time validation of a configuration: its destination's schema, the account filter,
the credential it names and the users it notifies. Every problem is reported at once."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pydantic

from services.control.errors import pydantic_details, quoted_id, validation_error
from services.control.users import UserDirectory
from shared.contracts import Destination, IntegrationConfig, IntegrationConfigAdapter
from shared.credentials import CredentialType, StoredCredential
from shared.filters import FilterSyntaxError, parse_filter

DESTINATIONS = {d.value for d in Destination}
FILTER_FIELD = "entityConfig.accountFilter"
# Every service parses the filter of every configuration it loads: a bound on its size is a
# bound on that work (20,000 characters parse in about 20 ms).
MAX_FILTER_CHARS = 20_000


def as_json(data: Any) -> str:
    """A parsed body back to JSON text, for pydantic's strict JSON mode: there a string is
    never taken for a boolean or a number ("yes", "1"), while enums and times still
    arrive as strings."""
    return json.dumps(data, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, date):  # datetimes too; YAML files have both
        return value.isoformat()
    raise TypeError(type(value).__name__)


def credential_type_for(destination: Destination) -> CredentialType:
    """STRIPE and STRIPE_TEST take a STRIPE credential, PADDLE_SANDBOX a PADDLE one, ..."""
    return CredentialType(destination.family.upper())


def filter_details(expression: str) -> list[dict[str, Any]]:
    if len(expression) > MAX_FILTER_CHARS:
        return [
            {
                "field": FILTER_FIELD,
                "message": f"the filter is {len(expression)} characters long; at most "
                f"{MAX_FILTER_CHARS} are accepted: shorten it (e.g. match accounts by a "
                "tag or code prefix instead of listing them)",
            }
        ]
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
        return f"integration credential {quoted_id(credential_id)} does not exist; create it first"
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
    entity = entity if isinstance(entity, dict) else {}
    expression = entity.get("accountFilter")
    if isinstance(expression, str) and expression.strip():
        details += filter_details(expression)
        if details:  # reported with its position above: never parse a bad filter twice
            data = {**data, "entityConfig": {**entity, "accountFilter": None}}
    config: IntegrationConfig | None = None
    try:
        config = IntegrationConfigAdapter.validate_json(as_json(data), strict=True)
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
                        "message": "unknown user: use a user id from the users "
                        "directory or an email address",
                    }
                )
    if details or config is None:
        raise validation_error(
            f"the configuration has {len(details)} problem(s); see details", details
        )
    return config
