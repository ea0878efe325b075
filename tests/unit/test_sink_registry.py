"""Destinations register their parts from their own package; the shared parts use them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from services.control import oauth
from services.control.errors import ApiError
from services.control.settings import ControlSettings
from services.stripe_sink.oauth import StripeConnectSettings
from services.xero_sink.oauth import XeroOAuthSettings
from shared.contracts import Destination
from shared.credentials import Credential
from shared.sinks import registry
from shared.sinks.classify import classify_response
from shared.sinks.errors import AuthenticationError, FatalBillError, RateLimitedError
from shared.sinks.oauth import OAuthClientSettings, OAuthError, OAuthFlow
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
    xero = XeroOAuthSettings(client_id="app", client_secret=SecretStr("s"))
    url = urlsplit(flows["xero"].authorize_url(xero, "http://cb/xero/callback", "st"))
    query = parse_qs(url.query)
    assert query["client_id"] == ["app"] and query["state"] == ["st"]
    assert "offline_access" in query["scope"][0]
    stripe = StripeConnectSettings(client_id="ca_1")  # no secret key: not configured
    assert not flows["stripe"].configured(stripe)
    with pytest.raises(OAuthError, match="BILLSYNC_CONTROL_STRIPE_CONNECT_CLIENT_ID"):
        flows["stripe"].authorize_url(stripe, "http://cb", "st")


def test_a_flows_settings_are_its_own_class_read_under_the_control_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Operators keep the BILLSYNC_CONTROL_ variables; the control plane builds each
    registered flow's own settings class from them."""
    for name in ("CLIENT_ID", "CLIENT_SECRET", "TOKEN_URL", "SCOPES"):
        monkeypatch.setenv(f"BILLSYNC_CONTROL_XERO_{name}", f"xero-{name.lower()}")
    monkeypatch.setenv("BILLSYNC_CONTROL_STRIPE_CONNECT_CLIENT_ID", "ca_env")
    monkeypatch.setenv("BILLSYNC_CONTROL_STRIPE_CONNECT_SECRET_KEY", "sk_env")
    built = oauth._flow_settings({})
    assert set(built) == set(registry.oauth_flows())
    xero, stripe = built["xero"], built["stripe"]
    assert isinstance(xero, XeroOAuthSettings) and isinstance(stripe, StripeConnectSettings)
    assert xero.client_id == "xero-client_id" and xero.token_url == "xero-token_url"
    assert xero.client_secret is not None
    assert xero.client_secret.get_secret_value() == "xero-client_secret"
    assert xero.scopes == "xero-scopes"
    assert xero.connections_url == "https://api.xero.com/connections"  # the default
    assert stripe.client_id == "ca_env" and stripe.secret_key is not None
    assert stripe.token_url == "https://connect.stripe.com/oauth/token"
    # Given settings replace the environment's, and must be the flow's own class.
    given = StripeConnectSettings(client_id="ca_given")
    assert oauth._flow_settings({"stripe": given})["stripe"] is given
    with pytest.raises(TypeError, match="StripeConnectSettings"):
        oauth._flow_settings({"stripe": xero})
    with pytest.raises(ValueError, match="quickbooks"):
        oauth._flow_settings({"quickbooks": given})


def test_control_settings_name_no_destination() -> None:
    """A new OAuth destination adds no field to the control plane's settings."""
    families = {p.family for p in registry.plugins().values()}
    providers = {n for p in registry.plugins().values() for n in (o.name for o in p.oauth)}
    names = families | providers | {"stripe_connect"}
    fields = ControlSettings.model_fields
    assert not [f for f in fields if any(f.startswith(f"{n}_") for n in names)]


class _ToySettings(OAuthClientSettings):
    model_config = SettingsConfigDict(env_prefix="BILLSYNC_TEST_TOY_", extra="ignore")

    authorize_url: str = "https://toy.example/authorize"
    token_url: str = "https://toy.example/token"


class _ToyFlow(OAuthFlow[_ToySettings]):
    family = "toy"
    title = "Toy"
    settings_type = _ToySettings
    settings_hint = "BILLSYNC_TEST_TOY_CLIENT_ID"

    def secret(self, settings: _ToySettings) -> SecretStr | None:
        return SecretStr("toy-secret")

    def scope(self, settings: _ToySettings) -> str:
        return "all"

    async def exchange(
        self,
        session: aiohttp.ClientSession,
        settings: _ToySettings,
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
    settings = oauth._flow_settings({})["toy"]
    assert isinstance(settings, _ToySettings)
    assert registry.oauth_flows()["toy"].authorize_origin(settings) == "https://toy.example"
    source = Path(oauth.__file__).read_text().lower()
    body = source.split('"""', 2)[2]  # the docstring may name examples
    assert "stripe" not in body and "xero" not in body
