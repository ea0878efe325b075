"""Fast envelope serialisation: the prepared bill, account and configuration are each
serialised once and spliced into every envelope that carries them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.contracts import Account, Bill, IntegrationConfig, SortLineItemsBy, Trigger, dispatch_id

# The preparation that changes nothing: the input bytes can be reused.
from shared.routing.prepare import preparation_key, prepare_bill

IDENTITY: tuple[frozenset[str], SortLineItemsBy] = (frozenset(), SortLineItemsBy.NONE)


def _dump(model: Bill | Account | IntegrationConfig) -> bytes:
    return model.model_dump_json(by_alias=True, exclude_none=True).encode()


class EnvelopeBuilder:
    """Builds the envelopes for one bill. Caches per bill; configuration JSON is cached
    across bills by (id, version)."""

    def __init__(self, config_json_cache: dict[tuple[str, int], bytes]) -> None:
        self._config_cache = config_json_cache

    def config_json(self, config: IntegrationConfig) -> bytes:
        key = (config.id, config.version)
        cached = self._config_cache.get(key)
        if cached is None:
            cached = self._config_cache[key] = _dump(config)
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
        """Returns (configuration, dispatch id, envelope bytes) per configuration.

        `raw_bill` (the validated input bytes) is reused as-is for configurations that
        neither exclude nor sort lines: it is the same bill, without a re-serialisation."""
        account_json = account_json or _dump(account)
        prepared: dict[object, bytes] = {}
        if raw_bill is not None:
            prepared[IDENTITY] = raw_bill
        routed_at = datetime.now(UTC).isoformat()
        out: list[tuple[IntegrationConfig, str, bytes]] = []
        for config in configs:
            pkey = preparation_key(config.entity_config)
            bill_json = prepared.get(pkey)
            if bill_json is None:
                bill_json = prepared[pkey] = _dump(prepare_bill(bill, config.entity_config))
            did = dispatch_id(bill.id, bill.version, config.id, config.version, trigger, replay_id)
            head = json.dumps(
                {
                    "dispatchId": did,
                    "trigger": trigger.value,
                    "integrationConfigId": config.id,
                    "integrationConfigVersion": config.version,
                    "routedAt": routed_at,
                    "source": source,
                },
                separators=(",", ":"),
            ).encode()
            body = b"".join(
                (
                    head[:-1],
                    b',"integrationConfig":',
                    self.config_json(config),
                    b',"account":',
                    account_json,
                    b',"bill":',
                    bill_json,
                    b"}",
                )
            )
            out.append((config, did, body))
        return out
