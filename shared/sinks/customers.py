"""Which destination customer a bill goes to (pure).

Without "use external mapping account code" the m3ter account id is the customer. With it,
the account's external mapping for this destination is used; "enforce external mappings
for config" restricts that to mappings whose parent configuration is this one. Otherwise a
mapping parented to this configuration wins over an unparented one, which wins over one
parented elsewhere."""

from __future__ import annotations

from collections.abc import Iterable

from shared.contracts import ExternalMapping, ExternalSystem, IntegrationConfig
from shared.sinks.errors import MissingAccountMappingError


def resolve_customer(
    account_id: str,
    config: IntegrationConfig,
    mappings: Iterable[ExternalMapping],
    system: ExternalSystem,
) -> str:
    entity = config.entity_config
    if not entity.use_external_mapping_account_code:
        return account_id
    candidates = [
        m
        for m in mappings
        if m.external_system == system
        and m.m3ter_entity.lower() == "account"
        and m.m3ter_id == account_id
    ]
    if entity.enforce_external_mappings_for_config:
        candidates = [m for m in candidates if m.integration_config_id == config.id]

    def rank(m: ExternalMapping) -> int:
        if m.integration_config_id == config.id:
            return 0
        return 1 if m.integration_config_id is None else 2

    candidates.sort(key=lambda m: (rank(m), m.id))
    if not candidates:
        scope = (
            f" with parent configuration {config.id!r}"
            if entity.enforce_external_mappings_for_config
            else ""
        )
        raise MissingAccountMappingError(
            f"no {system.value} external mapping for account {account_id!r}{scope}: create an "
            f"external mapping (m3terEntity Account, m3terId {account_id}) to the "
            f"{system.value} customer id, then resend the bill"
        )
    return candidates[0].external_id


class MappingIndex:
    """External mappings by (system, m3ter id), kept current from the compacted topic."""

    def __init__(self) -> None:
        self._by_id: dict[str, ExternalMapping] = {}
        self._by_entity: dict[tuple[ExternalSystem, str], dict[str, ExternalMapping]] = {}

    def apply(self, key: str, mapping: ExternalMapping | None) -> None:
        old = self._by_id.pop(key, None)
        if old is not None:
            self._by_entity.get((old.external_system, old.m3ter_id), {}).pop(key, None)
        if mapping is not None:
            self._by_id[key] = mapping
            self._by_entity.setdefault((mapping.external_system, mapping.m3ter_id), {})[key] = (
                mapping
            )

    def for_account(self, system: ExternalSystem, account_id: str) -> list[ExternalMapping]:
        return list(self._by_entity.get((system, account_id), {}).values())
