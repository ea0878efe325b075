"""The one place the monitor cleans error text before it leaves in an e-mail, the disable
reason or an outbound webhook: no fragment of a secret, and no hint of its length.

A stop-gap until the project has a shared scrubber (issue 8 item 4): when it lands,
`redact` should delegate to it, and every caller here keeps going through this function."""

from __future__ import annotations

import re

REDACTED = "[redacted]"

_PATTERNS = [
    # Stripe keys, whole or as Stripe masks them ("sk_test_****01zz"): the prefix, the
    # visible tail and the number of asterisks all go.
    re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9*]*"),
    re.compile(r"\bwhsec_[A-Za-z0-9*]*"),
    # OAuth / bearer tokens quoted in an error.
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=*-]+"),
    # Any other masked fragment: a run of asterisks and what trails it.
    re.compile(r"\*{3,}[A-Za-z0-9_-]*"),
]


def redact(text: str | None) -> str | None:
    if text is None:
        return None
    for pattern in _PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text
