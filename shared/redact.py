"""`scrub_secrets`: the one function that removes secrets, and fragments of them, from text
a provider sends back before billsync keeps, shows or logs that text.

Stripe echoes the key it refused ("Invalid API Key provided: sk_test_****01zz"): the tail is
part of the secret and the count of asterisks gives the key's length. So a whole key-shaped
token goes, masked or not, and is replaced by a marker of fixed length that keeps only the
public kind of the key (`sk_test_[REDACTED]`), which tells an operator which key to fix."""

from __future__ import annotations

import re

REDACTED = "[REDACTED]"

# sk_/rk_/pk_ (secret, restricted, publishable; live or test) and whsec_ (webhook signing)
# tokens, with whatever mask or tail follows the prefix.
_KEY = re.compile(
    r"(?<![A-Za-z0-9])(?P<kind>(?:sk|rk|pk)_(?:live_|test_)?|whsec_)"
    r"[A-Za-z0-9_*\u2022]*(?:\[REDACTED\])?"
)
# Any other masked token ("abcd****wxyz", "****1234"): the visible part is a fragment.
_MASKED = re.compile(r"[A-Za-z0-9_\-]*(?:\*|\u2022){2,}[A-Za-z0-9_\-*\u2022]*")
# Whatever a provider says it was given as a key or token, in any shape.
_GIVEN = re.compile(
    r"(?P<lead>\b(?:api[ _-]?key|key|token|secret)s?\s+(?:provided|given|supplied)\s*:?\s*)"
    r"(?P<value>[^\s,;'\"()]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<lead>\bBearer\s+)(?P<value>[^\s,;'\"()]+)", re.IGNORECASE)


def scrub_secrets(text: str) -> str:
    """`text` with every key-shaped token, masked token and echoed credential replaced.
    Idempotent: scrubbing scrubbed text changes nothing."""
    if not text:
        return text
    text = _KEY.sub(_key_marker, text)
    text = _MASKED.sub(REDACTED, text)
    text = _GIVEN.sub(lambda m: m["lead"] + _keep_marker(m["value"]), text)
    return _BEARER.sub(lambda m: m["lead"] + _keep_marker(m["value"]), text)


def _key_marker(match: re.Match[str]) -> str:
    kind = match["kind"]
    return match[0] if match[0][len(kind) :] == REDACTED else f"{kind}{REDACTED}"


def _keep_marker(value: str) -> str:
    # An already scrubbed key keeps its kind ("sk_test_[REDACTED]"); a sentence's full stop
    # stays.
    if REDACTED in value:
        return value
    return REDACTED + value[len(value.rstrip(".:!?")) :]
