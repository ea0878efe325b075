"""The verifier registry finds a destination's verifier by convention; the Stripe one
checks the key's mode before making any call."""

from __future__ import annotations

from services.control.verifiers import verifier_for
from services.stripe_sink.verify import mode_problem, verify_stripe
from shared.contracts import Destination


def test_the_stripe_verifier_is_found_through_the_registry() -> None:
    assert verifier_for(Destination.STRIPE_TEST) is verify_stripe
    assert verifier_for(Destination.STRIPE) is verify_stripe
    assert verifier_for(Destination.XERO) is None  # no verify module: nothing to check


def test_key_mode_must_match_the_configuration() -> None:
    assert mode_problem("sk_test_abc", Destination.STRIPE_TEST) is None
    assert mode_problem("rk_live_abc", Destination.STRIPE) is None
    assert "test mode key" in str(mode_problem("rk_test_abc", Destination.STRIPE))
    assert "live mode key" in str(mode_problem("sk_live_abc", Destination.STRIPE_TEST))
    assert "not a Stripe secret" in str(mode_problem("pk_test_abc", Destination.STRIPE_TEST))
    # The message never quotes the key.
    assert "abc" not in str(mode_problem("sk_live_abc", Destination.STRIPE_TEST))
