"""Stripe-Signature verification: acceptance and every refusal."""

from __future__ import annotations

import pytest

from services.webhooks.signature import SignatureError, compute, parse_header, sign, verify

SECRET = "whsec_test_secret"
BODY = b'{"id":"evt_1","type":"invoice.paid"}'
NOW = 1_800_000_000


def test_valid_signature_returns_timestamp() -> None:
    assert verify(sign(SECRET, BODY, NOW), BODY, SECRET, now=NOW) == NOW


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert compute(SECRET, NOW, BODY) == expected
    assert sign(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"


def test_within_tolerance_both_ways_is_accepted() -> None:
    header = sign(SECRET, BODY, NOW)
    assert verify(header, BODY, SECRET, now=NOW + 300) == NOW
    assert verify(header, BODY, SECRET, now=NOW - 300) == NOW


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header(header: str | None) -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify(header, BODY, SECRET, now=NOW)


@pytest.mark.parametrize(
    "header", ["garbage", f"t={NOW},v1", "t=abc,v1=00", "v1=00", f"t={NOW},=x"]
)
def test_malformed_header(header: str) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        verify(header, BODY, SECRET, now=NOW)


def test_no_v1_signature() -> None:
    header = f"t={NOW},v0={compute(SECRET, NOW, BODY)}"
    with pytest.raises(SignatureError, match="no v1"):
        verify(header, BODY, SECRET, now=NOW)


def test_wrong_secret() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(sign("whsec_other", BODY, NOW), BODY, SECRET, now=NOW)


def test_stale_timestamp() -> None:
    with pytest.raises(SignatureError, match="too old"):
        verify(sign(SECRET, BODY, NOW), BODY, SECRET, now=NOW + 301)


def test_future_timestamp_beyond_tolerance() -> None:
    with pytest.raises(SignatureError, match="future"):
        verify(sign(SECRET, BODY, NOW + 301), BODY, SECRET, now=NOW)


def test_tampered_body() -> None:
    header = sign(SECRET, BODY, NOW)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(header, BODY.replace(b"paid", b"void"), SECRET, now=NOW)


def test_tampered_timestamp() -> None:
    sig = compute(SECRET, NOW, BODY)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(f"t={NOW + 1},v1={sig}", BODY, SECRET, now=NOW)


def test_multiple_v1_one_valid() -> None:
    good = compute(SECRET, NOW, BODY)
    header = f"t={NOW},v1={'0' * 64},v1={good},v0=ignored"
    assert verify(header, BODY, SECRET, now=NOW) == NOW


def test_multiple_v1_none_valid() -> None:
    header = f"t={NOW},v1={'0' * 64},v1={compute('other', NOW, BODY)}"
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(header, BODY, SECRET, now=NOW)


def test_parse_header_keeps_every_v1() -> None:
    assert parse_header("t=5, v1=a ,v1=b") == (5, ["a", "b"])
