"""What the router hands a sink: one envelope per bill per matching configuration."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from pydantic import Field

from shared.contracts.account import Account
from shared.contracts.base import WireModel
from shared.contracts.bill import Bill
from shared.contracts.config import IntegrationConfig


class Trigger(StrEnum):
    GENERATED = "GENERATED"
    APPROVED = "APPROVED"
    REPLAY = "REPLAY"


def dispatch_id(
    bill_id: str,
    bill_version: int,
    config_id: str,
    config_version: int,
    trigger: Trigger,
    replay_id: str | None = None,
) -> str:
    """Deterministic: the same bill version, configuration version and trigger -> the same id,
    so a sink can recognise a redelivered or re-routed envelope. A replay carries its own
    request id: replaying on purpose is a new dispatch (it still updates the same invoice)."""
    return DispatchIds(bill_id, bill_version, trigger, replay_id).of(config_id, config_version)


class DispatchIds:
    """`dispatch_id` for one bill and trigger and many configurations: the bill's parts
    of the hashed text are encoded once."""

    __slots__ = ("_head", "_tail")

    def __init__(
        self, bill_id: str, bill_version: int, trigger: Trigger, replay_id: str | None = None
    ) -> None:
        self._head = f"{bill_id}\x1f{bill_version}\x1f".encode()
        tail = f"\x1f{trigger.value}"
        if replay_id:
            tail += f"\x1f{replay_id}"
        self._tail = tail.encode()

    def of(self, config_id: str, config_version: int) -> str:
        config = f"{config_id}\x1f{config_version}".encode()
        digest = hashlib.sha256(b"".join((self._head, config, self._tail))).hexdigest()
        return "dsp_" + digest[:32]


class DispatchEnvelope(WireModel):
    dispatch_id: str
    trigger: Trigger
    integration_config_id: str
    integration_config_version: int
    # Snapshot of the configuration that matched, so the sink applies exactly what was
    # routed. The routing lists (accountIds, restrictedAccountIds) are left out: routing
    # is decided, and a large allow list would ride along in every envelope.
    integration_config: IntegrationConfig
    bill: Bill  # prepared: excluded line types removed, lines sorted
    account: Account
    routed_at: str
    # Set when an operator resends (a resend must not be de-duplicated away).
    resend_of_run_id: str | None = None
    source: str | None = Field(default=None, description="topic/partition/offset of the input")


class ReplayRequest(WireModel):
    """A bill re-published by `billsync replay` on the replay topic (live groups stay put)."""

    replay_id: str
    source_topic: str
    source_partition: int
    source_offset: int
    approved_source: bool
    config_ids: list[str] | None = None
    bill: Bill
