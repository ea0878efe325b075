"""The JWT bearer assertion (RFC 7523) Salesforce exchanges for a session: RS256 over
`{iss: consumer key, sub: username, aud: login host, exp}`, signed with the operator's
private key (the connected app holds the matching certificate).

Signed with `cryptography` (already a dependency for credentials at rest): a compact JWS
is two base64url JSON parts and a PKCS#1 v1.5 SHA-256 signature, no library needed."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# Salesforce refuses an assertion whose exp is more than 3 minutes away.
ASSERTION_LIFETIME = 170


class AssertionKeyError(ValueError):
    """The private key cannot sign: not PEM, encrypted, or not RSA."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_assertion(
    *, client_id: str, username: str, audience: str, private_key_pem: str, now: float
) -> str:
    try:
        key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    except (ValueError, TypeError):
        # No detail: the message of a parse error could quote part of the key.
        raise AssertionKeyError(
            "the private key is not an unencrypted PEM RSA key; store the key whose "
            "certificate the connected app holds"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AssertionKeyError("the private key is not an RSA key; JWT bearer needs RS256")
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {
        "iss": client_id,
        "sub": username,
        "aud": audience,
        "exp": int(now) + ASSERTION_LIFETIME,
    }
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64(signature)}"
