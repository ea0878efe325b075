"""Stripe-style webhook signatures: `t=<unix>,v1=<hex>[,v1=<hex>]`, HMAC-SHA256 over
`"{t}.{raw body}"`. Pure functions; billsync signs its own outbound events the same way."""

from __future__ import annotations

import hashlib
import hmac
import time

DEFAULT_TOLERANCE = 300  # seconds; Stripe's default


class SignatureError(ValueError):
    """Why a signature was refused (safe to return to the caller: contains no secret)."""


def compute(secret: str, timestamp: int, payload: bytes) -> str:
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, payload: bytes, timestamp: int | None = None) -> str:
    """The header value for `payload`, signed now unless a timestamp is given."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={compute(secret, ts, payload)}"


def parse_header(header: str | None) -> tuple[int, list[str]]:
    """(timestamp, v1 signatures); other schemes (v0, ...) are ignored as Stripe does."""
    if not header or not header.strip():
        raise SignatureError("missing signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not key:
            raise SignatureError("malformed signature header")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError as exc:
                raise SignatureError("malformed signature header: bad timestamp") from exc
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("malformed signature header: no timestamp")
    if not signatures:
        raise SignatureError("no v1 signature in header")
    return timestamp, signatures


def verify(
    header: str | None,
    payload: bytes,
    secret: str,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> int:
    """Return the signed timestamp, or raise SignatureError. Any v1 may match (secret
    rotation sends two); the timestamp bounds replay of a captured request both ways."""
    timestamp, signatures = parse_header(header)
    expected = compute(secret, timestamp, payload)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("no signature matches the payload")
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise SignatureError("timestamp outside the tolerance (too old)")
    if timestamp > current + tolerance:
        raise SignatureError("timestamp outside the tolerance (in the future)")
    return timestamp
