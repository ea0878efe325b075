"""Which Paddle environment a key belongs to: `pdl_live_apikey_` keys work only on live
Paddle (PADDLE), `pdl_sdbx_apikey_` keys only in the sandbox (PADDLE_SANDBOX)."""

from __future__ import annotations

from shared.contracts import Destination

LIVE_PREFIX = "pdl_live_apikey_"
SANDBOX_PREFIX = "pdl_sdbx_apikey_"


def environment_problem(api_key: str, destination: Destination) -> str | None:
    """Why this key cannot serve this destination, in words for the operator (never the
    key), or None."""
    live = destination is Destination.PADDLE
    wrong, right = (SANDBOX_PREFIX, LIVE_PREFIX) if live else (LIVE_PREFIX, SANDBOX_PREFIX)
    if api_key.startswith(wrong):
        return (
            f"the key is a {'sandbox' if live else 'live'} key ({wrong}...) but the "
            f"configuration is {destination.value}: attach a {'live' if live else 'sandbox'} "
            f"key ({right}...)"
        )
    if not api_key.startswith(right):
        return (
            f"the key is not a Paddle API key ({right}...): create one under Developer tools "
            f"> Authentication in the Paddle {'dashboard' if live else 'sandbox dashboard'}"
        )
    return None
