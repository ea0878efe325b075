"""shared.redact.scrub_secrets: no fragment of a key, masked or not, and no hint of its length."""

from __future__ import annotations

import string

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st

from fakes.stripe.core import mask_key
from services.stripe_sink.client import scrub_stripe_error
from shared.redact import REDACTED, scrub_secrets
from shared.sinks.classify import classify_response


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (
            "Invalid API Key provided: sk_test_****01zz",
            f"Invalid API Key provided: sk_test_{REDACTED}",
        ),
        (
            "Expired API Key provided: sk_live_*******************abcd. Platform access",
            f"Expired API Key provided: sk_live_{REDACTED}. Platform access",
        ),
        ("Invalid API Key provided: changeme", f"Invalid API Key provided: {REDACTED}"),
        ("Invalid API Key provided: ab****yz.", f"Invalid API Key provided: {REDACTED}."),
        (
            "rk_test_51Habc and pk_live_9 and whsec_Zz9",
            f"rk_test_{REDACTED} and pk_live_{REDACTED} and whsec_{REDACTED}",
        ),
        ("Authorization: Bearer eyJhbGciOi.abc", f"Authorization: Bearer {REDACTED}"),
        ("token ****1234 refused", f"token {REDACTED} refused"),
        ("No such customer: 'cus_Q1w2'", "No such customer: 'cus_Q1w2'"),
        ("risk_level task_test desk_live_x", "risk_level task_test desk_live_x"),
        ("", ""),
    ],
)
def test_scrub_examples(text: str, scrubbed: str) -> None:
    assert scrub_secrets(text) == scrubbed
    assert scrub_secrets(scrubbed) == scrubbed  # idempotent: client and framework both scrub


secret_tails = st.text(string.ascii_letters + string.digits, min_size=8, max_size=99)
prefixes = st.sampled_from(["sk_test_", "sk_live_", "rk_test_", "rk_live_", "pk_test_", "whsec_"])
prose = st.text(string.ascii_letters + " .,:", max_size=30)


def fragments(secret: str, size: int = 4) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


@given(prefix=prefixes, tail=secret_tails, before=prose, after=prose, masked=st.booleans())
def test_no_fragment_survives_and_length_is_not_revealed(
    prefix: str, tail: str, before: str, after: str, masked: bool
) -> None:
    key = prefix + tail
    shown = mask_key(key) if masked else key
    text = f"{before} Invalid API Key provided: {shown} {after}"
    out = scrub_secrets(text)
    assert scrub_secrets(out) == out
    assert "*" not in out
    leaked = {f for f in fragments(tail) if f in out and f not in before + after}
    assert not leaked
    # The same text for a key of another length: the output says nothing about the length.
    other = prefix + tail + "x" * 7
    other_shown = mask_key(other) if masked else other
    assert scrub_secrets(f"{before} Invalid API Key provided: {other_shown} {after}") == out


def test_stripe_errors_leave_the_client_scrubbed() -> None:
    message = "Invalid API Key provided: sk_test_****01zz"
    body = {"error": {"message": message, "type": "invalid_request_error"}}
    exc = stripe.AuthenticationError(message, str(body), 401, body, {"request-id": "req_1"})
    scrub_stripe_error(exc)
    for text in (str(exc), repr(exc), exc.user_message, exc.http_body, str(exc.json_body)):
        assert "01zz" not in (text or "") and "****" not in (text or "")
    assert (
        exc.error is not None
        and exc.error.message == f"Invalid API Key provided: sk_test_{REDACTED}"
    )
    assert exc.request_id == "req_1" and exc.http_status == 401


def test_the_framework_scrubs_every_providers_error_text() -> None:
    err = classify_response(401, "Paddle 401: API key provided: pdl_live_apikey_01zz is invalid")
    assert "01zz" not in err.message and REDACTED in err.message
