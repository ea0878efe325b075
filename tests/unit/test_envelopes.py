"""The spliced envelope bytes equal a normally validated DispatchEnvelope, whether the
prepared bill comes from the input's bytes (fast path) or from the pydantic model."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from services.router.envelopes import (
    EnvelopeBuilder,
    ModelPreparedBills,
    PreparedBills,
    RawPreparedBills,
    _around_line_list,
    dump,
)
from shared.contracts import Bill, DispatchEnvelope, Trigger, dispatch_id
from shared.contracts.fastbill import decode_bill
from shared.routing import prepare_bill
from shared.routing.prepare import preparation_key
from tests.support.builders import account, bill, config, line


def _sources(original: Bill, raw: bytes) -> list[PreparedBills]:
    fast = decode_bill(raw)
    assert fast is not None
    return [RawPreparedBills(raw, fast), ModelPreparedBills(original, raw)]


@pytest.mark.parametrize("source_index", [0, 1], ids=["raw", "model"])
def test_envelope_round_trips_with_prepared_bill(source_index: int) -> None:
    cfg = config(
        "cfg-x", entity={"excludedLineItemTypes": ["MINIMUM_SPEND"], "sortLineItemsBy": "SUBTOTAL"}
    )
    original = bill(
        lines=[line("a", "USAGE", "9"), line("b", "MINIMUM_SPEND", "1"), line("c", "USAGE", "2")]
    )
    acc = account()
    bills = _sources(original, original.to_bytes())[source_index]
    [(got_cfg, did, body)] = EnvelopeBuilder().build_prepared(
        "bill-1", 1, bills, dump(acc), [cfg], Trigger.GENERATED, "t/0/5"
    )
    envelope = DispatchEnvelope.model_validate_json(body)
    assert got_cfg is cfg
    assert did == envelope.dispatch_id == dispatch_id("bill-1", 1, "cfg-x", 1, Trigger.GENERATED)
    assert envelope.bill == prepare_bill(original, cfg.entity_config)
    assert [li.id for li in envelope.bill.line_items] == ["c", "a"]
    assert envelope.account == acc
    assert envelope.integration_config == cfg
    assert envelope.integration_config_version == 1
    assert envelope.source == "t/0/5"
    assert json.loads(body)["bill"]["lineItems"][0]["subtotal"] == "2"


@pytest.mark.parametrize("source_index", [0, 1], ids=["raw", "model"])
def test_raw_input_is_reused_only_when_preparation_changes_nothing(source_index: int) -> None:
    original = bill(lines=[line("a", "USAGE", "9"), line("b", "MINIMUM_SPEND", "1")])
    raw = original.to_bytes()
    plain = config("plain")
    sorting = config("sorting", entity={"sortLineItemsBy": "SUBTOTAL"})
    built = EnvelopeBuilder().build_prepared(
        "bill-1",
        1,
        _sources(original, raw)[source_index],
        dump(account()),
        [plain, sorting],
        Trigger.GENERATED,
        "t/0/1",
    )
    by_id = {cfg.id: body for cfg, _, body in built}
    assert raw in by_id["plain"]  # spliced as-is, no re-serialisation
    assert raw not in by_id["sorting"]
    sorted_env = DispatchEnvelope.model_validate_json(by_id["sorting"])
    assert [li.id for li in sorted_env.bill.line_items] == ["b", "a"]
    assert DispatchEnvelope.model_validate_json(by_id["plain"]).bill == original


def test_spliced_bill_keeps_fields_this_version_does_not_know() -> None:
    data = json.loads(bill(lines=[line("a", "USAGE", "9"), line("b", "USAGE", "1")]).to_bytes())
    data["futureField"] = {"nested": [1, 2]}
    data["lineItems"][0]["futureLineField"] = "kept"
    raw = json.dumps(data).encode()
    fast = decode_bill(raw)
    assert fast is not None
    sorting = config("sorting", entity={"sortLineItemsBy": "SUBTOTAL"})
    out = json.loads(
        RawPreparedBills(raw, fast).prepared(
            sorting.entity_config, preparation_key(sorting.entity_config)
        )
    )
    assert out["futureField"] == {"nested": [1, 2]}
    assert [li["id"] for li in out["lineItems"]] == ["b", "a"]
    assert out["lineItems"][1]["futureLineField"] == "kept"
    assert {k: v for k, v in out.items() if k != "lineItems"} == {
        k: v for k, v in data.items() if k != "lineItems"
    }


@pytest.mark.parametrize(
    "disguise",
    [
        # a field before the list holding the very same bytes
        lambda raw, listed: raw.replace(b'"id":', b'"decoy":' + listed + b',"id":', 1),
        # a nested "lineItems" holding them
        lambda raw, listed: raw.replace(b'"id":', b'"x":{"lineItems":' + listed + b'},"id":', 1),
        # the top-level key spelt with an escape, and a nested copy written plainly
        lambda raw, listed: raw.replace(b'"lineItems":', b'"line\\u0049tems":').replace(
            b'"id":', b'"x":{"lineItems":' + listed + b'},"id":', 1
        ),
        # spaces around the colon
        lambda raw, listed: raw.replace(b'"lineItems":', b'"lineItems" :  '),
        # a nested copy after the list
        lambda raw, listed: raw[:-1] + b',"z":{"lineItems":' + listed + b"}}",
        # a nested copy before the list and a backslash elsewhere (quotes inside strings)
        lambda raw, listed: raw.replace(
            b'"id":', b'"x":{"lineItems":' + listed + b'},"note":"a \\"q\\" \\\\","id":', 1
        ),
        # the list written with spaces (found by rebuilding from the top-level fields)
        lambda raw, listed: raw.replace(b"},{", b"} , {").replace(
            b'"lineItems":[', b'"lineItems":[ '
        ),
        # a line holding a nested "lineItems" of its own
        lambda raw, listed: raw.replace(b'"id":"a"', b'"sub":{"lineItems":[]},"id":"a"', 1),
    ],
    ids=[
        "copy-in-field",
        "nested-key",
        "escaped-key",
        "spaces",
        "copy-after",
        "backslashes",
        "spaced-list",
        "nested-in-line",
    ],
)
def test_the_line_list_is_replaced_where_it_is_and_nowhere_else(
    disguise: Callable[[bytes, bytes], bytes],
) -> None:
    data = json.loads(bill(lines=[line("a", "USAGE", "9"), line("b", "USAGE", "1")]).to_bytes())
    listed = json.dumps(data["lineItems"], separators=(",", ":")).encode()
    raw = disguise(json.dumps(data, separators=(",", ":")).encode(), listed)
    fast = decode_bill(raw)
    assert fast is not None
    sorting = config("sorting", entity={"sortLineItemsBy": "SUBTOTAL"})
    out = json.loads(
        RawPreparedBills(raw, fast).prepared(
            sorting.entity_config, preparation_key(sorting.entity_config)
        )
    )
    assert [li["id"] for li in out["lineItems"]] == ["b", "a"]
    original = json.loads(raw)
    assert {k: v for k, v in out.items() if k != "lineItems"} == {
        k: v for k, v in original.items() if k != "lineItems"
    }


def test_the_line_list_is_found_in_place_without_a_rebuild() -> None:
    """The common inputs take the cheap path (the input's bytes around the list)."""
    data = json.loads(bill(lines=[line("a", "USAGE", "9"), line("b", "USAGE", "1")]).to_bytes())
    data["lineItems"][0]["sub"] = {"lineItems": []}
    for separators in ((", ", ": "), (",", ":")):
        raw = json.dumps(data, separators=separators).encode()
        listed = json.dumps(data["lineItems"], separators=separators).encode()
        around = _around_line_list(raw, listed)
        assert around is not None
        assert around[0] + listed + around[1] == raw


def test_the_configuration_snapshot_leaves_the_routing_lists_out() -> None:
    allow = [f"acc-{i:05d}" for i in range(5000)]
    cfg = config(
        "cfg-lists",
        accountIds=allow,
        restrictedAccountIds=["acc-x"],
        entity={"excludedLineItemTypes": ["MINIMUM_SPEND"]},
    )
    [(_, _, body)] = EnvelopeBuilder().build(bill(), account(), [cfg], Trigger.GENERATED, "t/0/1")
    snapshot = json.loads(body)["integrationConfig"]
    assert "accountIds" not in snapshot and "restrictedAccountIds" not in snapshot
    assert len(body) < 10_000  # the 5,000-account list would be some 60 KB
    sent = DispatchEnvelope.model_validate_json(body).integration_config
    assert (
        sent.model_copy(update={"account_ids": allow, "restricted_account_ids": ["acc-x"]}) == cfg
    )
