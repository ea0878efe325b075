"""Users directory, the disable email and the provider-error event (pure parts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.monitor.actions import disable_reason
from services.monitor.mailer import DisabledNotice, compose
from services.monitor.notify_webhook import provider_error_event, wants_notification
from services.monitor.redact import redact
from services.monitor.state import ConfigErrorState
from services.monitor.users import Recipient, UnknownUser, UsersDirectory
from shared.contracts import Destination, IntegrationRun, RunStatus


def test_users_directory_resolves_ids_and_passes_addresses_through(tmp_path: Path) -> None:
    listed = tmp_path / "list.yaml"
    listed.write_text("- {id: u1, email: one@example.com, name: One}\n- {id: u2}\n")
    nested = tmp_path / "nested.yaml"
    nested.write_text("users:\n  - {id: u3, email: three@example.com}\n")
    assert UsersDirectory(str(listed)).resolve("u1") == Recipient("u1", "one@example.com", "One")
    assert UsersDirectory(str(nested)).resolve("u3").email == "three@example.com"
    assert UsersDirectory(None).resolve("ops@example.com").email == "ops@example.com"
    with pytest.raises(UnknownUser):
        UsersDirectory(str(listed)).resolve("u2")  # no email: not a usable entry


def test_email_names_the_configuration_and_the_last_error() -> None:
    state = ConfigErrorState(
        integration_config_id="cfg-1",
        successive_errors=10,
        last_error="No such customer",
        last_event_type="integration.perform.error",
        last_run_id="run-9",
        last_bill_id="bill-9",
        last_error_at=datetime.now(UTC),
    )
    msg = compose(
        DisabledNotice("cfg-1", "Stripe US", "STRIPE", state, 10),
        Recipient("u1", "one@example.com", "One"),
        "billsync@example.com",
    )
    body = msg.get_content()
    assert msg["To"] == "one@example.com" and "Stripe US (cfg-1)" in msg["Subject"]
    for text in (
        "Hello One",
        "Stripe US (cfg-1)",
        "10 successive errors",
        "No such customer",
        "run-9",
        "bill-9",
    ):
        assert text in body


def test_provider_error_event_only_for_failed_stripe_runs() -> None:
    def run(status: RunStatus, dest: Destination = Destination.STRIPE) -> IntegrationRun:
        return IntegrationRun(
            id="run-1",
            entity_id="bill-1",
            integration_config_id="cfg-1",
            destination=dest,
            status=status,
            dt_started=datetime.now(UTC),
            error="boom",
        )

    assert wants_notification(run(RunStatus.ERROR))
    assert wants_notification(run(RunStatus.TIMEOUT_LIMIT_EXCEEDED, Destination.STRIPE_TEST))
    assert not wants_notification(run(RunStatus.COMPLETE))
    assert not wants_notification(run(RunStatus.ERROR, Destination.XERO))
    event = provider_error_event(run(RunStatus.AUTH_FAILED), now=1234)
    assert event["type"] == "invoice.billing_provider_error" and event["created"] == 1234
    assert event["data"]["error"] == "boom" and event["data"]["status"] == "AUTH_FAILED"
    assert provider_error_event(run(RunStatus.AUTH_FAILED))["id"] == event["id"]


STRIPE_ERROR = "Invalid API Key provided: sk_test_****01zz"
# The key type (sk_test_, whsec_) may stay: it names no secret. Nothing of the key may.
LEAKS = ("01zz", "****", "9f8e7d", "abc.def")


def test_no_fragment_of_a_secret_leaves_in_email_reason_or_webhook() -> None:
    error = f"{STRIPE_ERROR}; webhook whsec_9f8e7d; Authorization: Bearer abc.def"
    state = ConfigErrorState(integration_config_id="cfg-1", successive_errors=10, last_error=error)
    msg = compose(
        DisabledNotice("cfg-1", "Stripe US", "STRIPE", state, 10),
        Recipient("u1", "one@example.com"),
        "billsync@example.com",
    )
    run = IntegrationRun(
        id="run-1",
        entity_id="bill-1",
        integration_config_id="cfg-1",
        destination=Destination.STRIPE,
        status=RunStatus.AUTH_FAILED,
        dt_started=datetime.now(UTC),
        error=error,
    )
    texts = {
        "email": msg.get_content(),
        "reason": disable_reason(state, 10),
        "webhook": json.dumps(provider_error_event(run)),
    }
    for where, text in texts.items():
        assert "Invalid API Key provided: sk_test_[REDACTED]" in text, where
        for leak in LEAKS:
            assert leak not in text, (where, leak)
    assert redact("No such customer: cus_404") == "No such customer: cus_404"


def test_email_points_to_enable_and_resend_since_the_first_error() -> None:
    state = ConfigErrorState(
        integration_config_id="cfg-1",
        successive_errors=10,
        first_error_at=datetime(2026, 1, 31, 8, 15, tzinfo=UTC),
        last_error_at=datetime(2026, 1, 31, 9, tzinfo=UTC),
    )
    body = compose(
        DisabledNotice("cfg-1", "", "STRIPE", state, 10),
        Recipient("u1", "one@example.com"),
        "billsync@example.com",
    ).get_content()
    assert "`billsync enable cfg-1`" in body
    assert "`billsync resend --config cfg-1 --since 2026-01-31T08:15:00Z`" in body
    assert "replay" not in body
