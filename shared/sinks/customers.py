"""Which destination customer a bill goes to, and the external mappings that concern it
(pure).

Without "use external mapping account code" the m3ter account id is the customer. With it,
the account's external mapping to the destination's customer table (Stripe Customer,
Paddle Customer, Xero Contact, Salesforce Account: `SinkDestination.customer_table`) is
used; a mapping of the account to another table (Paddle's Address and Business) is never
taken for the customer. "Enforce external mappings for config" restricts mappings to those
whose parent configuration is this one. Otherwise a mapping parented to this configuration
wins over an unparented one, which wins over one parented elsewhere (then by id).

`BillMappings` is what a `DeliveryRequest` carries: every mapping, in the destination's
external system, of the bill's account, of the products on its lines and of their pricing
bands, with helpers that apply the same rule."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from shared.contracts import Bill, ExternalMapping, ExternalSystem, IntegrationConfig
from shared.sinks.errors import MissingAccountMappingError

MappingLookup = Callable[[ExternalSystem, str], Sequence[ExternalMapping]]


def _rank(m: ExternalMapping, config_id: str) -> tuple[int, str]:
    if m.integration_config_id == config_id:
        return (0, m.id)
    return (1 if m.integration_config_id is None else 2, m.id)


def ranked(
    mappings: Iterable[ExternalMapping],
    config: IntegrationConfig,
    system: ExternalSystem,
    entity: str,
    m3ter_id: str,
    table: str,
) -> list[ExternalMapping]:
    """The mappings of m3ter `entity` `m3ter_id` to `table` of `system`, best first, by the
    configuration's rule (enforced: only those parented to this configuration). Entity and
    table compare case-insensitively."""
    enforce = config.entity_config.enforce_external_mappings_for_config
    return _ranked(mappings, system, config.id, enforce, entity, m3ter_id, table)


def _ranked(
    mappings: Iterable[ExternalMapping],
    system: ExternalSystem | None,
    config_id: str,
    enforce: bool,
    entity: str,
    m3ter_id: str,
    table: str,
) -> list[ExternalMapping]:
    found = [
        m
        for m in mappings
        if (system is None or m.external_system == system)
        and m.m3ter_entity.lower() == entity.lower()
        and m.m3ter_id == m3ter_id
        and m.external_table.lower() == table.lower()
    ]
    if enforce:
        found = [m for m in found if m.integration_config_id == config_id]
    return sorted(found, key=lambda m: _rank(m, config_id))


@dataclass(frozen=True)
class BillMappings:
    """The external mappings that concern one bill, for one destination's system.

    `rows` holds every mapping in the destination's system of the account, of the products
    on the bill's lines and of their pricing bands, unfiltered by configuration (a
    destination may need to tell "none at all" from "none for this configuration");
    `for_account`, `for_product` and `find` apply the configuration's rule (`config_id`,
    `enforce`) and return the best mapping (None: none usable)."""

    account_id: str = ""
    config_id: str = ""
    enforce: bool = False  # "enforce external mappings for config"
    rows: tuple[ExternalMapping, ...] = ()

    def ranked(self, entity: str, m3ter_id: str, table: str) -> list[ExternalMapping]:
        """Every usable mapping of `entity` `m3ter_id` to `table`, best first."""
        return _ranked(self.rows, None, self.config_id, self.enforce, entity, m3ter_id, table)

    def find(self, entity: str, m3ter_id: str, table: str) -> ExternalMapping | None:
        best = self.ranked(entity, m3ter_id, table)
        return best[0] if best else None

    def for_account(self, table: str) -> ExternalMapping | None:
        return self.find("Account", self.account_id, table)

    def for_product(self, product_id: str, table: str) -> ExternalMapping | None:
        return self.find("Product", product_id, table)


NO_MAPPINGS = BillMappings()


def bill_mapping_ids(bill: Bill) -> list[str]:
    """The m3ter ids whose mappings concern `bill`: its account, the products on its lines
    and their pricing bands (account first, then sorted)."""
    ids: set[str] = set()
    for line in bill.line_items:
        if line.product_id:
            ids.add(line.product_id)
        ids.update(b.pricing_band_id for b in line.usage_per_pricing_band if b.pricing_band_id)
    ids.discard(bill.account_id)
    return [bill.account_id, *sorted(ids)]


def bill_mappings(
    bill: Bill, config: IntegrationConfig, system: ExternalSystem, lookup: MappingLookup
) -> BillMappings:
    """Collect the mappings of `bill` in `system` through `lookup` (the sink's index by
    system and m3ter id); each mapping once, whatever ids share it."""
    seen: set[str] = set()
    rows: list[ExternalMapping] = []
    for m3ter_id in bill_mapping_ids(bill):
        for m in lookup(system, m3ter_id):
            if m.external_system == system and m.id not in seen:
                seen.add(m.id)
                rows.append(m)
    enforce = config.entity_config.enforce_external_mappings_for_config
    return BillMappings(bill.account_id, config.id, enforce, tuple(rows))


def resolve_customer(
    account_id: str,
    config: IntegrationConfig,
    mappings: Iterable[ExternalMapping],
    system: ExternalSystem,
    table: str,
) -> str:
    """The destination customer id for `account_id`: the account id itself, or (with "use
    external mapping account code") the best mapping of the account to `table`."""
    entity = config.entity_config
    if not entity.use_external_mapping_account_code:
        return account_id
    candidates = ranked(mappings, config, system, "Account", account_id, table)
    if not candidates:
        scope = (
            f" with parent configuration {config.id!r}"
            if entity.enforce_external_mappings_for_config
            else ""
        )
        raise MissingAccountMappingError(
            f"no {system.value} external mapping of account {account_id!r} to {table}{scope}: "
            f"create an external mapping (m3terEntity Account, m3terId {account_id}, "
            f"externalTable {table}) to the {system.value} {table.lower()} id, then resend "
            "the bill"
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
