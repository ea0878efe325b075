"""The entity configuration applied to a copy of the bill (pure: the same rule for the
router's fast path, replay's dry run and the console's preview)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol, TypeVar

from shared.contracts import Bill, EntityConfig, SortLineItemsBy


class LineFacts(Protocol):
    """What preparation reads from a line: the contract's `LineItem`, or the router's
    fast-decoded line (subtotal still a validated plain-notation string)."""

    @property
    def line_item_type(self) -> str: ...
    @property
    def subtotal(self) -> Decimal | str: ...
    @property
    def aggregation_id(self) -> str | None: ...


L = TypeVar("L", bound=LineFacts)


def kept_line_indices(lines: Sequence[LineFacts], entity: EntityConfig) -> list[int]:
    """Indices of the lines the configuration keeps, in the order it wants them."""
    if entity.excluded_line_item_types:
        excluded = set(entity.excluded_line_item_types)
        kept = [i for i, line in enumerate(lines) if line.line_item_type not in excluded]
    else:
        kept = list(range(len(lines)))
    if entity.sort_line_items_by is SortLineItemsBy.SUBTOTAL:
        return sorted(kept, key=lambda i: Decimal(lines[i].subtotal))
    if entity.sort_line_items_by is SortLineItemsBy.AGGREGATION_ID:
        if all(lines[i].aggregation_id is None for i in kept):
            return kept  # no line has one: the stable sort would change nothing

        # Lines without an aggregation id go last; ties keep the bill's order (stable sort).
        def by_aggregation(i: int) -> tuple[bool, str]:
            aggregation_id = lines[i].aggregation_id
            return (aggregation_id is None, aggregation_id or "")

        return sorted(kept, key=by_aggregation)
    return kept


def prepare_lines(lines: list[L], entity: EntityConfig) -> list[L]:
    return [lines[i] for i in kept_line_indices(lines, entity)]


def prepare_bill(bill: Bill, entity: EntityConfig) -> Bill:
    """A copy with excluded line item types removed and lines sorted; the input is untouched."""
    return bill.model_copy(update={"line_items": prepare_lines(bill.line_items, entity)})


def preparation_key(entity: EntityConfig) -> tuple[frozenset[str], SortLineItemsBy]:
    """Configurations with the same key get the same prepared bill (serialise it once)."""
    return frozenset(entity.excluded_line_item_types), entity.sort_line_items_by
