"""A real local SMTP server (aiosmtpd) that keeps what it receives, for tests.

with smtp_server() as (mailbox, port):
    ...  # point the monitor at 127.0.0.1:port
    assert mailbox.messages[0]["To"] == "ops@example.com"

``smtp_server(reject=True)`` refuses every message (554), for the failure paths.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller


class Mailbox:
    """aiosmtpd handler keeping what it is given (or refusing every message)."""

    def __init__(self, reject: bool = False) -> None:
        self.reject = reject
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reject:
            return "554 5.7.1 refused by the test server"
        message = message_from_bytes(envelope.content, policy=default_policy)
        if isinstance(message, EmailMessage):
            self.messages.append(message)
        return "250 OK"


@contextlib.contextmanager
def smtp_server(reject: bool = False) -> Iterator[tuple[Mailbox, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    mailbox = Mailbox(reject)
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
