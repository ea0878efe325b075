"""Verifies a Stripe credential when a configuration is connected: the key's mode must
match the configuration (sk_test_/rk_test_ for STRIPE_TEST, live keys for STRIPE), and one
GET /v1/balance (as the connected account, when one is set) must be accepted.

Registered with the control plane's verifier registry on import. Stripe's error messages
are never copied: they quote the key's prefix and last characters."""

from __future__ import annotations

import stripe

from services.control.verifiers import Verification, register
from shared.contracts import Destination
from shared.credentials import Credential, StripeCredential

from .client import api_base_from_env

_TEST_PREFIXES = ("sk_test_", "rk_test_")
_LIVE_PREFIXES = ("sk_live_", "rk_live_")
TIMEOUT_SECONDS = 10.0


def mode_problem(api_key: str, destination: Destination) -> str | None:
    live = destination is Destination.STRIPE
    if api_key.startswith(_TEST_PREFIXES if live else _LIVE_PREFIXES):
        return (
            f"the key is a {'test' if live else 'live'} mode key but the configuration is "
            f"{destination.value}: use a {'live' if live else 'test'} mode key "
            f"({'sk_live_/rk_live_' if live else 'sk_test_/rk_test_'})"
        )
    if not api_key.startswith(_TEST_PREFIXES + _LIVE_PREFIXES):
        return (
            "the key is not a Stripe secret or restricted key (sk_... or rk_...): "
            "copy it from the Stripe dashboard's API keys page"
        )
    return None


async def verify_stripe(credential: Credential, destination: Destination) -> Verification:
    if not isinstance(credential, StripeCredential):
        return Verification(False, f"a {destination.value} configuration needs a STRIPE credential")
    api_key = credential.api_key.get_secret_value()
    problem = mode_problem(api_key, destination)
    if problem:
        return Verification(False, problem)
    http = stripe.AIOHTTPClient(timeout=TIMEOUT_SECONDS)
    client = stripe.StripeClient(
        api_key,
        stripe_account=credential.connected_account_id,
        base_addresses={"api": api_base_from_env().rstrip("/")},
        http_client=http,
        max_network_retries=0,
    )
    try:
        balance = await client.v1.balance.retrieve_async()
    except stripe.AuthenticationError:
        return Verification(
            False, "Stripe refused the key (authentication failed): rotate the credential"
        )
    except stripe.PermissionError:
        if credential.connected_account_id:
            return Verification(
                False,
                "the key may not act for the connected account "
                f"{credential.connected_account_id}: connect that account to this platform",
            )
        # A restricted key without balance access: it authenticated, which is what we ask.
        return Verification(True)
    except (stripe.APIConnectionError, stripe.RateLimitError):
        return Verification(False, "could not reach Stripe to verify the key", retriable=True)
    except stripe.StripeError as exc:
        if (exc.http_status or 500) >= 500:
            return Verification(False, "Stripe could not answer; try again", retriable=True)
        return Verification(
            False, f"Stripe refused the verification request (HTTP {exc.http_status})"
        )
    finally:
        await http.close_async()  # type: ignore[no-untyped-call]
    if bool(balance.livemode) != (destination is Destination.STRIPE):
        mode = "live" if balance.livemode else "test"
        return Verification(
            False, f"Stripe answered in {mode} mode but the configuration is {destination.value}"
        )
    return Verification(True)


register("stripe", verify_stripe)
