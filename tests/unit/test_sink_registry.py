"""Destinations register their parts from their own package; the shared parts use them."""

from __future__ import annotations

from shared.sinks import registry
from shared.sinks.classify import classify_response
from shared.sinks.errors import AuthenticationError, FatalBillError, RateLimitedError
from shared.sinks.partitioning import dispatch_key, partition_for
from tests.support.builders import config


def test_destination_packages_are_discovered() -> None:
    stripe = registry.plugins()["stripe"]
    assert stripe.cli is not None and stripe.money and stripe.money.max_minor_units
    assert registry.oauth_provider("stripe") is not None
    assert registry.money_limits("nowhere") is None


def test_registered_codes_reach_the_one_classifier() -> None:
    registry.register(
        registry.DestinationPlugin(
            family="test-codes",
            rate_limit_codes=frozenset({"SLOW_DOWN_PLEASE"}),
            auth_codes=frozenset({"TOKEN_GONE"}),
        )
    )
    slow = classify_response(400, "x", provider_code="SLOW_DOWN_PLEASE")
    assert isinstance(slow, RateLimitedError)
    assert isinstance(classify_response(403, "x", provider_code="TOKEN_GONE"), AuthenticationError)
    assert isinstance(classify_response(400, "x", provider_code="OTHER"), FatalBillError)


def test_dispatch_key_puts_one_credential_on_one_partition() -> None:
    a = config("cfg-a", integrationCredentialsId="cred-1")
    b = config("cfg-b", integrationCredentialsId="cred-1")
    assert dispatch_key(a) == dispatch_key(b)
    assert dispatch_key(config("cfg-c")) == "cfg-c"
    assert partition_for(dispatch_key(a), 6) == partition_for(dispatch_key(b), 6)
    assert partition_for("abc", 6) == 3  # Kafka's default partitioner (murmur2)
