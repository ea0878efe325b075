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
)
from shared.contracts.dispatch import DispatchIds
from shared.contracts.fastbill import DecodedBill, raw_line_items
from shared.routing.prepare import kept_line_indices, preparation_key, prepare_bill

# The preparation that changes nothing: the input bytes can be reused.
IDENTITY: tuple[frozenset[str], SortLineItemsBy] = (frozenset(), SortLineItemsBy.NONE)

_TOP_LEVEL = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode = msgspec.json.encode


def dump(model: Bill | Account | IntegrationConfig) -> bytes:
    return model.model_dump_json(by_alias=True, exclude_none=True).encode()


# Which accounts a configuration wants is routing's business, decided before the envelope
# exists; an allow list of 50,000 accounts would otherwise ride along in every envelope
# (about 700 KB each).
ROUTING_LISTS = {"account_ids", "restricted_account_ids"}


def snapshot_json(config: IntegrationConfig) -> bytes:
    """The configuration as an envelope carries it: everything but the routing lists."""
    return config.model_dump_json(by_alias=True, exclude_none=True, exclude=ROUTING_LISTS).encode()


PreparationKey = tuple[frozenset[str], SortLineItemsBy]


class PreparedBills(Protocol):
    """The bill's JSON as each configuration's entity settings want it, cached per bill
    under the settings' preparation key."""

    def prepared(self, entity: EntityConfig, key: PreparationKey) -> bytes: ...


class RawPreparedBills:
    """From the validated input bytes: lines are filtered and reordered as byte slices.

    The input's own bytes around its line list are kept, so only the list is rebuilt
    (see _around_line_list); where the list cannot be located for certain, the bill is
    rebuilt from its top-level fields."""

    def __init__(self, raw: bytes, decoded: DecodedBill) -> None:
        self._raw = raw
        self._decoded = decoded
        self._cache: dict[object, bytes] = {IDENTITY: raw}
        # Each line's bytes and the input before / after the list, read at the first splice.
        self._raw_lines: list[msgspec.Raw] | None = None
        self._around: tuple[bytes, bytes] | None = None

    def prepared(self, entity: EntityConfig, key: PreparationKey) -> bytes:
        cached = self._cache.get(key)
        if cached is None:
            lines = self._decoded.lines
            order = kept_line_indices(lines, entity)
            cached = self._raw if order == list(range(len(lines))) else self._splice(order)
            self._cache[key] = cached
        return cached

    def _splice(self, order: list[int]) -> bytes:
        if self._raw_lines is None:
            self._raw_lines = raw_line_items(self._raw)
            # Found where the list is written compactly (as billing engines publish it);
            # elsewhere the bill is rebuilt from its top-level fields below.
            listed = b"".join((b"[", b",".join(self._raw_lines), b"]"))
            self._around = _around_line_list(self._raw, listed)
        kept = self._raw_lines
        line_list = b"".join((b"[", b",".join([kept[i] for i in order]), b"]"))
        if self._around is not None:
            return b"".join((self._around[0], line_list, self._around[1]))
        parts: list[bytes | msgspec.Raw] = [b"{"]
        for name, value in _TOP_LEVEL.decode(self._raw).items():
            if name != "lineItems":
                parts += (_encode(name), b":", value, b",")
        parts += (b'"lineItems":', line_list, b"}")
        return b"".join(parts)


_LINE_ITEMS_KEY = b'"lineItems"'
_SPACE = (b" ", b"\t", b"\r", b"\n")


def _around_line_list(raw: bytes, listed: bytes) -> tuple[bytes, bytes] | None:
    """The input before and after the value of its top-level "lineItems", or None.

    Without a backslash anywhere, every quote in the input delimits a string, so the first
    literal `"lineItems"` followed by a colon is a key, and its value is one whole JSON
    value: if those are the list's bytes, the top-level key is that one or comes after the
    list (it cannot sit inside a complete value), and one search of the rest settles it.
    With backslashes (rare) a key may be spelt with escapes or a quote may sit inside a
    string: the key must then occur exactly once and no escape may spell another. Where
    it is not certain, the caller rebuilds the bill from its top-level fields."""
    if b"\\" in raw and (b"\\u" in raw or raw.count(_LINE_ITEMS_KEY) != 1):
        return None
    at = raw.find(_LINE_ITEMS_KEY)
    if at < 0:
        return None
    at += len(_LINE_ITEMS_KEY)
    while raw[at : at + 1] in _SPACE:
        at += 1
    if raw[at : at + 1] != b":":
        return None
    at += 1
    while raw[at : at + 1] in _SPACE:
        at += 1
    end = at + len(listed)
    if not raw.startswith(listed, at) or raw.find(_LINE_ITEMS_KEY, end) >= 0:
        return None
    return raw[:at], raw[end:]


class ModelPreparedBills:
    """From a bill the pydantic contract validated (replays, and inputs the fast decoder
    left to the contract): prepared with the same rule, serialised by pydantic."""

    def __init__(self, bill: Bill, raw: bytes | None) -> None:
        self._bill = bill
        self._cache: dict[object, bytes] = {}
        if raw is not None:  # the validated input itself, for configurations that keep it
            self._cache[IDENTITY] = raw

    def prepared(self, entity: EntityConfig, key: PreparationKey) -> bytes:
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = dump(prepare_bill(self._bill, entity))
        return cached


class EnvelopeBuilder:
    """Builds the envelopes for one bill. A configuration's part of the envelope (its
    id, version and JSON) and its preparation key are computed once per (id, version)."""

    def __init__(self) -> None:
        self._config_parts: dict[tuple[str, int], tuple[bytes, PreparationKey]] = {}

    def _config_part(self, config: IntegrationConfig) -> tuple[bytes, PreparationKey]:
        """`,"integrationConfigId":…,"integrationConfig":{…},"account":` and the
        configuration's preparation key."""
        version = (config.id, config.version)
        part = self._config_parts.get(version)
        if part is None:
            fields = _encode(
                {"integrationConfigId": config.id, "integrationConfigVersion": config.version}
            )
            json = b"".join((b",", fields[1:-1], b',"integrationConfig":', snapshot_json(config)))
            part = (json + b',"account":', preparation_key(config.entity_config))
            self._config_parts[version] = part
        return part

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
        routed_at: str | None = None,
    ) -> list[tuple[IntegrationConfig, str, bytes]]:
        """Returns (configuration, dispatch id, envelope bytes) per configuration.
        `routed_at` defaults to now (the router passes one time per consumer batch).

        The envelope is spliced from parts made once: the bill's (trigger, time, source),
        each configuration's, the account's JSON and each prepared bill; only the
        dispatch id is new per envelope (hex digits: nothing to escape)."""
        routed_at = routed_at or datetime.now(UTC).isoformat()
        bill_part = _encode({"trigger": trigger.value, "routedAt": routed_at, "source": source})
        bill_part = bill_part[1:-1]
        out: list[tuple[IntegrationConfig, str, bytes]] = []
        ids = DispatchIds(bill_id, bill_version, trigger, replay_id)
        for config in configs:
            did = ids.of(config.id, config.version)
            config_part, key = self._config_part(config)
            body = b"".join(
                (
                    b'{"dispatchId":"',
                    did.encode(),
                    b'",',
                    bill_part,
                    config_part,
                    account_json,
                    b',"bill":',
                    bills.prepared(config.entity_config, key),
                    b"}",
                )
            )
            out.append((config, did, body))
        return out
