"""Verifies a Salesforce credential when a configuration is connected: the connected app's
flow must give a session (JWT bearer, client credentials or the refresh token), and one
`GET /services/data/v67.0/limits` on the session's `instance_url` must be accepted.

Registered with the control plane's verifier registry on import. Salesforce's own texts
are not copied beyond the OAuth error code and description (they never hold the key)."""

from __future__ import annotations

import aiohttp

from services.control.verifiers import Verification, register
from shared.contracts import Destination
from shared.credentials import Credential
from shared.credentials.models import SalesforceCredential

from .client import SalesforceApi, SalesforceApiError, SalesforceAuthError, UsageExhaustedError

TIMEOUT_SECONDS = 10.0


async def verify_salesforce(credential: Credential, destination: Destination) -> Verification:
    if not isinstance(credential, SalesforceCredential):
        return Verification(
            False, f"a {destination.value} configuration needs a SALESFORCE credential"
        )
    api = SalesforceApi(credential, timeout=TIMEOUT_SECONDS)
    try:
        await api.request("GET", f"{api.base}/limits")
    except SalesforceAuthError as exc:
        if exc.status is None and exc.error in ("unreachable", "unavailable"):
            return Verification(False, "could not reach Salesforce to log in", retriable=True)
        return Verification(
            False,
            f"Salesforce refused the login ({exc.error}: {exc.description}): check the "
            "connected app, the user, the key or secret and the login host",
        )
    except SalesforceApiError as exc:
        if exc.status >= 500 or exc.code == "REQUEST_LIMIT_EXCEEDED":
            return Verification(False, "Salesforce could not answer; try again", retriable=True)
        return Verification(
            False, f"Salesforce refused the verification request (HTTP {exc.status} {exc.code})"
        )
    except UsageExhaustedError:
        return Verification(False, "the org's daily API allocation is nearly spent", retriable=True)
    except (aiohttp.ClientError, TimeoutError):
        return Verification(False, "could not reach Salesforce to verify", retriable=True)
    finally:
        await api.close()
    return Verification(True)


register("salesforce", verify_salesforce)
