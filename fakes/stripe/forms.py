"""Decoding of Stripe's bracket-notation form encoding into nested values.

``metadata[k]=v`` -> ``{"metadata": {"k": "v"}}``; ``lines[0][price_data][product]=p`` ->
``{"lines": {"0": {"price_data": {"product": "p"}}}}``; ``expand[]=a&expand[]=b`` ->
``{"expand": {"0": "a", "1": "b"}}``. Indexed containers stay dicts with digit keys here:
the parameter schema turns them into lists where the API expects an array (so a metadata key
``"0"`` stays a key). ``lines[][id]=a&lines[][behavior]=delete&lines[][id]=b`` starts a new
element whenever the key is already set on the last one.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from .errors import invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")

FormValue = str | dict[str, Any]


def split_key(key: str) -> list[str]:
    """``a[b][0][]`` -> ``["a", "b", "0", ""]``; a key that is not bracket notation is literal."""
    match = _KEY.match(key)
    if match is None:
        return [key]
    return [match.group(1), *_SEGMENT.findall(match.group(2))]


def _has_path(node: Any, segs: list[str]) -> bool:
    for seg in segs:
        if not isinstance(node, dict) or seg not in node:
            return False
        node = node[seg]
    return True


def _insert(root: dict[str, Any], segs: list[str], value: str, raw_key: str) -> None:
    node: dict[str, Any] = root
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        if seg == "":
            rest = segs[i + 1 :]
            if last or not node:
                seg = str(len(node))
            else:
                last_key = str(len(node) - 1)
                prev = node.get(last_key)
                if isinstance(prev, dict) and rest and not _has_path(prev, rest):
                    seg = last_key
                else:
                    seg = str(len(node))
        if last:
            if isinstance(node.get(seg), dict):
                raise invalid(f"Invalid value for {raw_key}: it is also given nested keys.")
            node[seg] = value
            return
        child = node.get(seg)
        if child is None:
            child = {}
            node[seg] = child
        elif not isinstance(child, dict):
            # ``metadata=`` (unset all) followed by ``metadata[k]=v``: nested keys win.
            if child == "":
                child = {}
                node[seg] = child
            else:
                raise invalid(f"Invalid value for {raw_key}: it is also given a plain value.")
        node = child


def decode_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for key, value in pairs:
        segs = split_key(key)
        if len(segs) == 1 and isinstance(root.get(segs[0]), dict) and value == "":
            continue  # ``metadata=`` after nested keys: keep the nested keys
        _insert(root, segs, value, key)
    return root


def decode(body: str) -> dict[str, Any]:
    """Decode an ``application/x-www-form-urlencoded`` body (or query string)."""
    return decode_pairs(parse_qsl(body, keep_blank_values=True))


def encode(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """The inverse, for tests and tools: nested dicts/lists to bracket-notation pairs."""
    out: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            out.extend(encode(value, name))
        elif isinstance(value, list | tuple):
            out.extend(encode({str(i): v for i, v in enumerate(value)}, name))
        elif isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        elif value is None:
            continue
        else:
            out.append((name, str(value)))
    return out
