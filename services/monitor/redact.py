"""The one place the monitor cleans error text before it leaves in an e-mail, the disable
reason or an outbound webhook: no fragment of a secret, and no hint of its length. The
rules themselves are the project's one scrubber (`shared.redact`)."""

from __future__ import annotations

from shared.redact import scrub_secrets


def redact(text: str | None) -> str | None:
    return None if text is None else scrub_secrets(text)
