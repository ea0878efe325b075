"""Verifies a Paddle credential when a configuration is connected: the key must belong to
the configuration's environment (`pdl_live_apikey_` for PADDLE, `pdl_sdbx_apikey_` for
PADDLE_SANDBOX; keys.py), and one `GET /transactions?per_page=1` (the sink's own read
permission) must be accepted.

Registered with the control plane's verifier registry on import. Paddle's error texts are
not copied into the reason."""

from __future__ import annotations

import aiohttp

from services.control.verifiers import Verification, register
from shared.contracts import Destination
from shared.credentials import Credential, PaddleCredential

from .client import PaddleApi, PaddleApiError, api_base_for
from .keys import environment_problem

TIMEOUT_SECONDS = 10.0


async def verify_paddle(credential: Credential, destination: Destination) -> Verification:
    if not isinstance(credential, PaddleCredential):
        return Verification(False, f"a {destination.value} configuration needs a PADDLE credential")
    api_key = credential.api_key.get_secret_value()
    problem = environment_problem(api_key, destination)
    if problem:
        return Verification(False, problem)
    api = PaddleApi(api_key, api_base_for(destination), destination, timeout=TIMEOUT_SECONDS)
    try:
        await api.ping()
    except PaddleApiError as exc:
        if exc.status in (401, 403):
            return Verification(
                False,
                f"Paddle refused the key ({exc.code}): rotate the credential, or give the key "
                "the transaction read and write permissions",
            )
        if exc.status == 429 or exc.status >= 500:
            return Verification(False, "Paddle could not answer; try again", retriable=True)
        return Verification(False, f"Paddle refused the verification request (HTTP {exc.status})")
    except (TimeoutError, aiohttp.ClientError):
        return Verification(False, "could not reach Paddle to verify the key", retriable=True)
    finally:
        await api.close()
    return Verification(True)


register("paddle", verify_paddle)
