"""``expand[]``: replace ``customer`` / ``invoice`` ids in a response by the objects.

Paths are checked before the endpoint runs (``data.customer`` on lists and search results,
``customer`` and ``invoice`` on objects); anything else is refused like Stripe does for a
property that cannot be expanded.
"""

from __future__ import annotations

from typing import Any

from .errors import invalid
from .objects import render_invoice
from .state import JSON, Namespace

_LEAVES = ("customer", "invoice")


def check(paths: list[str]) -> None:
    for path in paths:
        *prefix, leaf = path.split(".")
        if leaf not in _LEAVES or any(part != "data" for part in prefix) or len(prefix) > 1:
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")


def apply(ns: Namespace, body: JSON, paths: list[str]) -> None:
    for path in paths:
        _apply(ns, body, path.split("."))


def _apply(ns: Namespace, obj: Any, parts: list[str]) -> None:
    if not isinstance(obj, dict):
        return
    head, rest = parts[0], parts[1:]
    if head == "data" and rest and obj.get("object") in ("list", "search_result"):
        for item in obj["data"]:
            _apply(ns, item, rest)
        return
    value = obj.get(head)
    if rest or not isinstance(value, str):
        return
    if head == "customer" and value in ns.customers:
        obj[head] = dict(ns.customers[value])
    elif head == "invoice" and value in ns.invoices:
        obj[head] = render_invoice(ns, ns.invoices[value])
