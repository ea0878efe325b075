"""The entity configuration applied to a copy of the bill."""

from __future__ import annotations

from decimal import Decimal

from shared.contracts import Bill, EntityConfig, LineItem, SortLineItemsBy


def _sort_key_subtotal(line: LineItem) -> Decimal:
    return line.subtotal


def _sort_key_aggregation(line: LineItem) -> tuple[bool, str]:
    # Lines without an aggregation id go last; ties keep the bill's order (stable sort).
    return (line.aggregation_id is None, line.aggregation_id or "")


def prepare_lines(lines: list[LineItem], entity: EntityConfig) -> list[LineItem]:
    excluded = set(entity.excluded_line_item_types)
    kept = [line for line in lines if line.line_item_type not in excluded] if excluded else lines
    if entity.sort_line_items_by is SortLineItemsBy.SUBTOTAL:
        return sorted(kept, key=_sort_key_subtotal)
    if entity.sort_line_items_by is SortLineItemsBy.AGGREGATION_ID:
        return sorted(kept, key=_sort_key_aggregation)
    return list(kept)


def prepare_bill(bill: Bill, entity: EntityConfig) -> Bill:
    """A copy with excluded line item types removed and lines sorted; the input is untouched."""
    return bill.model_copy(update={"line_items": prepare_lines(bill.line_items, entity)})


def preparation_key(entity: EntityConfig) -> tuple[frozenset[str], SortLineItemsBy]:
    """Configurations with the same key get the same prepared bill (serialise it once)."""
    return frozenset(entity.excluded_line_item_types), entity.sort_line_items_by
