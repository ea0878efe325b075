"""The spliced envelope bytes equal a normally validated DispatchEnvelope."""

from __future__ import annotations

import json

from services.router.envelopes import EnvelopeBuilder
from shared.contracts import DispatchEnvelope, Trigger, dispatch_id
from shared.routing import prepare_bill
from tests.support.builders import account, bill, config, line


def test_envelope_round_trips_with_prepared_bill() -> None:
    cfg = config(
        "cfg-x", entity={"excludedLineItemTypes": ["MINIMUM_SPEND"], "sortLineItemsBy": "SUBTOTAL"}
    )
    original = bill(
        lines=[line("a", "USAGE", "9"), line("b", "MINIMUM_SPEND", "1"), line("c", "USAGE", "2")]
    )
    acc = account()
    [(got_cfg, did, body)] = EnvelopeBuilder({}).build(
        original, acc, [cfg], Trigger.GENERATED, "t/0/5"
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


def test_raw_input_is_reused_only_when_preparation_changes_nothing() -> None:
    original = bill(lines=[line("a", "USAGE", "9"), line("b", "MINIMUM_SPEND", "1")])
    raw = original.to_bytes()
    plain = config("plain")
    sorting = config("sorting", entity={"sortLineItemsBy": "SUBTOTAL"})
    built = EnvelopeBuilder({}).build(
        original, account(), [plain, sorting], Trigger.GENERATED, "t/0/1", raw_bill=raw
    )
    by_id = {cfg.id: body for cfg, _, body in built}
    assert raw in by_id["plain"]  # spliced as-is, no re-serialisation
    assert raw not in by_id["sorting"]
    sorted_env = DispatchEnvelope.model_validate_json(by_id["sorting"])
    assert [li.id for li in sorted_env.bill.line_items] == ["b", "a"]
    assert DispatchEnvelope.model_validate_json(by_id["plain"]).bill == original
