"""The ``/_fake/config`` patch both the local Stripe and the local Paddle accept: a partial
JSON-shaped update of the fake's config dataclasses, with fault rules checked."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import fields
from typing import Any

FAULT_ACTIONS = ("status", "drop_before_commit", "drop_after_commit")


def patch_config(
    target: Any,
    patch: dict[str, Any],
    *,
    sections: Collection[str],
    rule: type[Any],
    where: str = "",
) -> None:
    """Set each key of `patch` on the dataclass `target`; a dict under a key in `sections`
    patches that nested section, ``rules`` is replaced by `rule` instances (from dicts)
    whose ``action`` must be one of `FAULT_ACTIONS`. Unknown keys raise ``ValueError``
    naming the dotted path (`where` is its prefix)."""
    names = {f.name for f in fields(target)}
    for key, value in patch.items():
        if key not in names:
            raise ValueError(f"unknown config key: {where}{key}")
        if key in sections and isinstance(value, dict):
            nested = getattr(target, key)
            patch_config(nested, value, sections=sections, rule=rule, where=f"{where}{key}.")
        elif key == "rules":
            rules = [r if isinstance(r, rule) else rule(**r) for r in value]
            for item in rules:
                if item.action not in FAULT_ACTIONS:
                    raise ValueError(f"unknown fault action: {item.action}")
            target.rules = rules
        else:
            setattr(target, key, value)
