"""Fast envelope serialisation: the prepared bill, account and configuration are each
serialised once and spliced into every envelope that carries them.

A prepared bill is built from the input's own bytes where it can be: the bill as
published for configurations that change nothing, and the input's top-level fields with
a filtered, reordered list of its line items' bytes otherwise. Nothing is re-serialised,
so fields this version does not know travel on unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import msgspec

from shared.contracts import (
    Account,
    Bill,
    EntityConfig,
    IntegrationConfig,
    SortLineItemsBy,
    Trigger,
    dispatch_id,
)
from shared.contracts.fastbill import FastBill
from shared.routing.prepare import kept_line_indices, preparation_key, prepare_bill

# The preparation that changes nothing: the input bytes can be reused.
IDENTITY: tuple[frozenset[str], SortLineItemsBy] = (frozenset(), SortLineItemsBy.NONE)

_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_encode = msgspec.json.encode


def dump(model: Bill | Account | IntegrationConfig) -> bytes:
    return model.model_dump_json(by_alias=True, exclude_none=True).encode()


class PreparedBills(Protocol):
    """The bill's JSON as each configuration's entity settings want it, cached per bill."""

    def prepared(self, entity: EntityConfig) -> bytes: ...


class RawPreparedBills:
    """From the validated input bytes: lines are filtered and reordered as byte slices."""

    def __init__(self, raw: bytes, bill: FastBill) -> None:
        self._raw = raw
        self._bill = bill
        self._cache: dict[object, bytes] = {IDENTITY: raw}
        self._fields: list[tuple[bytes, msgspec.Raw]] | None = None
        self._lines: list[msgspec.Raw] = []

    def prepared(self, entity: EntityConfig) -> bytes:
        key = preparation_key(entity)
        cached = self._cache.get(key)
        if cached is None:
            order = kept_line_indices(self._bill.line_items, entity)
            if order == list(range(len(self._bill.line_items))):
                cached = self._raw
            else:
                cached = self._splice(order)
            self._cache[key] = cached
        return cached

    def _splice(self, order: list[int]) -> bytes:
        if self._fields is None:
            top = _TOP_LEVEL.decode(self._raw)
            lines = top.pop("lineItems", None)
            self._lines = _RAW_LIST.decode(lines) if lines is not None else []
            self._fields = [(_encode(name), value) for name, value in top.items()]
        parts: list[bytes | msgspec.Raw] = [b"{"]
        for name, value in self._fields:
            parts += (name, b":", value, b",")
        parts.append(b'"lineItems":[')
        kept = self._lines
        parts.append(b",".join([kept[i] for i in order]))
        parts.append(b"]}")
        return b"".join(parts)


class ModelPreparedBills:
    """From a bill the pydantic contract validated (replays, and inputs the fast decoder
    left to the contract): prepared with the same rule, serialised by pydantic."""

    def __init__(self, bill: Bill, raw: bytes | None) -> None:
        self._bill = bill
        self._cache: dict[object, bytes] = {}
        if raw is not None:  # the validated input itself, for configurations that keep it
            self._cache[IDENTITY] = raw

    def prepared(self, entity: EntityConfig) -> bytes:
        key = preparation_key(entity)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = dump(prepare_bill(self._bill, entity))
        return cached


class EnvelopeBuilder:
    """Builds the envelopes for one bill. Configuration JSON is cached across bills by
    (id, version)."""

    def __init__(self, config_json_cache: dict[tuple[str, int], bytes]) -> None:
        self._config_cache = config_json_cache

    def config_json(self, config: IntegrationConfig) -> bytes:
        key = (config.id, config.version)
        cached = self._config_cache.get(key)
        if cached is None:
            cached = self._config_cache[key] = dump(config)
        return cached

    def build(
        self,
        bill: Bill,
        account: Account,
        configs: list[IntegrationConfig],
        trigger: Trigger,
        source: str,
        replay_id: str | None = None,
        raw_bill: bytes | None = None,
        account_json: bytes | None = None,
    ) -> list[tuple[IntegrationConfig, str, bytes]]:
        """The envelopes for a bill the pydantic contract validated (tests, tools);
        `raw_bill`, the validated input bytes, is reused for configurations that keep it."""
        return self.build_prepared(
            bill.id,
            bill.version,
            ModelPreparedBills(bill, raw_bill),
            account_json or dump(account),
            configs,
            trigger,
            source,
            replay_id,
        )

    def build_prepared(
        self,
        bill_id: str,
        bill_version: int,
        bills: PreparedBills,
        account_json: bytes,
        configs: list[IntegrationConfig],
        trigger: Trigger,
        source: str,
        replay_id: str | None = None,
    ) -> list[tuple[IntegrationConfig, str, bytes]]:
        """Returns (configuration, dispatch id, envelope bytes) per configuration."""
        routed_at = datetime.now(UTC).isoformat()
        out: list[tuple[IntegrationConfig, str, bytes]] = []
        for config in configs:
            did = dispatch_id(bill_id, bill_version, config.id, config.version, trigger, replay_id)
            head = _encode(
                {
                    "dispatchId": did,
                    "trigger": trigger.value,
                    "integrationConfigId": config.id,
                    "integrationConfigVersion": config.version,
                    "routedAt": routed_at,
                    "source": source,
                }
            )
            body = b"".join(
                (
                    head[:-1],
                    b',"integrationConfig":',
                    self.config_json(config),
                    b',"account":',
                    account_json,
                    b',"bill":',
                    bills.prepared(config.entity_config),
                    b"}",
                )
            )
            out.append((config, did, body))
        return out
