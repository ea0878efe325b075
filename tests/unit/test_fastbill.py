"""The router's fast bill decoder vouches only for bills the pydantic contract accepts,
with the same values, and knows every field the contract has."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from shared.contracts import Account, Bill, LineItem, PricingBandUsage
from shared.contracts.fastbill import (
    FastBill,
    FastLineItem,
    FastPricingBandUsage,
    decode_bill,
    raw_line_items,
)
from tests.support.builders import account, bill, line


@pytest.mark.parametrize(
    ("fast", "model"),
    [(FastBill, Bill), (FastLineItem, LineItem), (FastPricingBandUsage, PricingBandUsage)],
)
def test_fast_structs_have_the_contracts_fields(
    fast: type[msgspec.Struct], model: type[BaseModel]
) -> None:
    fast_fields = {f.encode_name: f.required for f in msgspec.structs.fields(fast)}
    model_fields = {(f.alias or n): f.is_required() for n, f in model.model_fields.items()}
    assert fast_fields == model_fields


def test_a_plain_bill_decodes_fast_with_the_contracts_values() -> None:
    original = bill(
        lines=[line("a", "USAGE", "9.50", aggregationId="agg"), line("b", "MINIMUM_SPEND")],
        embed=account(),
    )
    decoded = decode_bill(original.to_bytes())
    assert decoded is not None
    fast = decoded.bill
    assert (fast.id, fast.version, fast.account_id) == ("bill-1", 1, "acc-1")
    assert [li.line_item_type for li in decoded.lines] == ["USAGE", "MINIMUM_SPEND"]
    assert decoded.lines[0].aggregation_id == "agg"
    published = json.loads(original.to_bytes())["lineItems"]
    raw_lines = raw_line_items(original.to_bytes())
    assert [json.loads(bytes(item)) for item in raw_lines] == published
    embedded = fast.embedded_account()
    assert embedded is not None and json.loads(embedded)["id"] == "acc-1"
    without = decode_bill(bill().to_bytes())
    assert without is not None and without.bill.embedded_account() is None


@pytest.mark.parametrize(
    "amount",
    ["1e400", "1e999999999", "NaN", "Infinity", "1E+2", "007", "1.0000000000000000001", "\u0661"],
)
def test_decimals_outside_plain_bounds_are_left_to_the_contract(amount: str) -> None:
    data = json.loads(bill().to_bytes())
    data["lineItems"][0]["subtotal"] = amount
    assert decode_bill(json.dumps(data).encode()) is None


@pytest.mark.parametrize("quantity", ["1,2", "1\n2", "", "-", "1.", ".5", "1-2", " 1", "1 "])
def test_a_decimal_that_is_not_one_plain_number_is_left_to_the_contract(quantity: str) -> None:
    data = json.loads(bill().to_bytes())
    data["lineItems"][0]["quantity"] = quantity
    assert decode_bill(json.dumps(data).encode()) is None


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("bill", "billTotal"),
        ("line", "averageUnitPrice"),
        ("band", "lowerLimit"),
        ("band", "bandQuantity"),
        ("band", "unitPrice"),
        ("band", "bandSubtotal"),
        ("band", "fixedPrice"),
    ],
)
def test_an_empty_optional_decimal_is_left_to_the_contract(where: str, field: str) -> None:
    """An empty string is not an absent value: the contract refuses it."""
    data = json.loads(bill().to_bytes())
    line_data = data["lineItems"][0]
    line_data["usagePerPricingBand"] = [{"unitPrice": "1"}]
    target = {"bill": data, "line": line_data, "band": line_data["usagePerPricingBand"][0]}
    target[where][field] = ""
    raw = json.dumps(data).encode()
    with pytest.raises(pydantic.ValidationError):
        Bill.model_validate_json(raw)
    assert decode_bill(raw) is None


# ---- property: whatever the fast decoder accepts, the contract accepts alike ----------

_decimals = st.one_of(
    st.sampled_from(
        ["0", "-0", "1", "1.5", "00", "1e3", "1E+400", "NaN", "-Infinity", " 1", "1.", ".5", ""]
    ),
    st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str),
    st.from_regex(r"-?[0-9]{1,22}(\.[0-9]{1,20})?", fullmatch=True),
    st.integers(-(10**25), 10**25),
    st.floats(allow_nan=False, allow_infinity=False),
)
_datetimes = st.one_of(
    st.sampled_from(
        [
            "2026-11-01T02:00:00Z",
            "2026-11-01t02:00:00z",
            "2026-11-01 02:00:00Z",
            "2026-11-01T02:00:00.1234567Z",
            "2026-11-01T24:00:00Z",
            "2026-11-01T02:00:60Z",
            "2026-11-01T02:00Z",
            "2026-11-01",
            "2026-11-01T02:00:00+25:00",
            "2026-02-30T00:00:00Z",
            "20261101T020000Z",
            "2026-11-01T02:00:00.Z",
        ]
    ),
    st.datetimes().map(lambda d: d.isoformat()),
    st.integers(0, 2**40),
)
_dates = st.one_of(
    st.sampled_from(["2026-11-01", "2026-13-01", "2026-11-01T00:00:00Z", "20261101", ""]),
    st.dates().map(str),
    st.integers(0, 2**40),
)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=5), _decimals
)


@st.composite
def _bills(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(bill(embed=account()).to_bytes())
    line_data: dict[str, Any] = data["lineItems"][0]
    line_data["usagePerPricingBand"] = [{"unitPrice": "1", "bandQuantity": "2"}]
    targets: list[tuple[dict[str, Any], str, st.SearchStrategy[Any]]] = [
        (data, "version", st.one_of(st.integers(-2, 2**70), st.just("3"), st.just(3.0))),
        (data, "id", st.sampled_from(["", "x", 5])),
        (data, "currency", st.sampled_from(["usd", "US", "USDX", None])),
        (data, "billTotal", _decimals),
        (data, "billDate", _dates),
        (data, "lastCalculatedDate", _datetimes),
        (data, "locked", st.sampled_from([True, 0, "true", None])),
        (data, "status", st.sampled_from(["PENDING", "pending", "X"])),
        (data, "customFields", st.dictionaries(st.text(max_size=3), _scalars, max_size=3)),
        (line_data, "subtotal", _decimals),
        (line_data, "quantity", st.one_of(_decimals, st.none())),
        (line_data, "lineItemType", st.sampled_from(["USAGE", "usage", "NOPE"])),
        (line_data, "servicePeriodStartDate", _datetimes),
        (line_data, "productCustomFields", st.dictionaries(st.text(max_size=3), _scalars)),
        (line_data["usagePerPricingBand"][0], "unitPrice", _decimals),
        (data["account"], "id", st.sampled_from(["", "acc-1", None])),
    ]
    for target, key, values in draw(st.lists(st.sampled_from(targets), min_size=1, max_size=4)):
        target[key] = draw(values)
    return data


@settings(max_examples=400, deadline=None)
@given(_bills())
def test_fast_acceptance_implies_contract_acceptance(data: dict[str, Any]) -> None:
    raw = json.dumps(data, default=str).encode()
    decoded = decode_bill(raw)
    if decoded is None:
        return  # the contract decides
    fast = decoded.bill
    embedded = fast.embedded_account()
    if embedded is not None:
        try:  # the router validates an embedded account with the contract's Account
            Account.model_validate_json(embedded)
        except pydantic.ValidationError:
            return
    try:
        model = Bill.model_validate_json(raw)
    except pydantic.ValidationError as exc:  # pragma: no cover - the failure being hunted
        raise AssertionError(f"fast decoder accepted what the contract refuses: {exc}") from exc
    assert (model.id, model.version, model.account_id) == (fast.id, fast.version, fast.account_id)
    for fast_line, model_line in zip(decoded.lines, model.line_items, strict=True):
        assert Decimal(fast_line.subtotal) == model_line.subtotal
        assert Decimal(fast_line.quantity) == model_line.quantity
        assert fast_line.line_item_type == model_line.line_item_type
        assert fast_line.aggregation_id == model_line.aggregation_id
    # Dates and times are only validated here (the router forwards the input's bytes;
    # msgspec rounds a seventh fractional digit where pydantic truncates it).
    assert fast.custom_fields == model.custom_fields
