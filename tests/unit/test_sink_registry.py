"""Destinations register their parts from their own package; the shared parts use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from services.control import oauth
from services.control.errors import ApiError
from services.control.settings import ControlSettings
from shared.contracts import Destination
from shared.credentials import Credential
from shared.sinks import registry
from shared.sinks.classify import classify_response
from shared.sinks.errors import AuthenticationError, FatalBillError, RateLimitedError
from shared.sinks.oauth import OAuthFlow
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


def test_oauth_flows_register_from_their_destination() -> None:
    flows = registry.oauth_flows()
    assert {"stripe", "xero"} <= set(flows)
    assert flows["xero"].family == "xero" and flows["stripe"].family == "stripe"
    # Salesforce registers an OAuth provider but no control-plane connect flow.
    assert registry.oauth_provider("salesforce") is not None
    assert registry.oauth_flow("salesforce") is None
    settings = ControlSettings(xero_client_id="app", xero_client_secret="s")  # type: ignore[arg-type]
    url = urlsplit(flows["xero"].authorize_url(settings, "http://cb/xero/callback", "st"))
    query = parse_qs(url.query)
    assert query["client_id"] == ["app"] and query["state"] == ["st"]
    assert "offline_access" in query["scope"][0]
    assert not flows["stripe"].configured(settings)


class _ToyFlow(OAuthFlow):
    family = "toy"
    title = "Toy"
    settings_hint = "TOY_CLIENT_ID"

    def configured(self, settings: Any) -> bool:
        return True

    def authorize_endpoint(self, settings: Any) -> str:
        return "https://toy.example/authorize"

    def authorize_params(self, settings: Any, redirect_uri: str, state: str) -> dict[str, str]:
        return {"state": state, "redirect_uri": redirect_uri}

    async def exchange(
        self,
        session: aiohttp.ClientSession,
        settings: Any,
        *,
        config_id: str,
        code: str,
        redirect_uri: str,
        destination: Destination,
    ) -> Credential:
        raise NotImplementedError


def test_control_plane_connects_any_registered_flow_and_names_no_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ApiError) as refused:
        oauth._flow("toy")
    assert refused.value.status == 400 and "stripe or xero" in refused.value.message
    toy = registry.DestinationPlugin(
        family="toy", oauth=(registry.OAuthProvider("toy", "", "", flow=_ToyFlow()),)
    )
    registry.plugins()
    monkeypatch.setitem(registry._PLUGINS, "toy", toy)  # gone after the test
    assert oauth._flow("toy").family == "toy"
    assert "https://toy.example" in registry.oauth_flows()["toy"].authorize_origin(None)
    source = Path(oauth.__file__).read_text().lower()
    body = source.split('"""', 2)[2]  # the docstring may name examples
    assert "stripe" not in body and "xero" not in body
