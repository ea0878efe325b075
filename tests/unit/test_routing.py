"""The pure routing core: lists, approval, filters, preparation, dispatch ids."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.contracts import LineItemType, SortLineItemsBy, Trigger, dispatch_id
from shared.routing import FilterReason, compile_route, prepare_bill, route_bill
from shared.routing.prepare import kept_line_indices
from tests.support.builders import account, bill, config, line


def _route(
    cfg_kwargs: dict,
    acc_id: str = "acc-1",
    trigger: Trigger = Trigger.GENERATED,
    **acc_fields: object,
) -> FilterReason | None:
    route = compile_route(config(**cfg_kwargs))
    result = route_bill(bill(account_id=acc_id), account(acc_id, **acc_fields), trigger, [route])
    if result.matches:
        return None
    return next(iter(result.filtered))


@pytest.mark.parametrize(
    ("allow", "deny", "acc", "expected"),
    [
        ([], [], "acc-1", None),  # both empty: every account
        (["acc-1"], [], "acc-1", None),
        (["acc-2"], [], "acc-1", FilterReason.NOT_IN_ALLOW_LIST),
        ([], ["acc-1"], "acc-1", FilterReason.DENY_LIST),
        ([], ["acc-2"], "acc-1", None),
        (["acc-1"], ["acc-1"], "acc-1", FilterReason.DENY_LIST),  # deny wins
    ],
)
def test_allow_and_deny_lists(
    allow: list[str], deny: list[str], acc: str, expected: FilterReason | None
) -> None:
    assert _route({"accountIds": allow, "restrictedAccountIds": deny}, acc) == expected


@pytest.mark.parametrize(
    ("on_approval", "trigger", "expected"),
    [
        (False, Trigger.GENERATED, None),
        (False, Trigger.APPROVED, FilterReason.APPROVAL_NOT_REQUIRED),
        (True, Trigger.GENERATED, FilterReason.AWAITING_APPROVAL),
        (True, Trigger.APPROVED, None),
    ],
)
def test_approval_rule(on_approval: bool, trigger: Trigger, expected: FilterReason | None) -> None:
    cfg = {"entity": {"onlySendBillOnApproval": on_approval}}
    assert _route(cfg, trigger=trigger) == expected


def test_replay_follows_the_source_topic_for_approval() -> None:
    route = compile_route(config(entity={"onlySendBillOnApproval": True}))
    acc = account()
    from_generated = route_bill(bill(), acc, Trigger.REPLAY, [route], approved_source=False)
    from_approved = route_bill(bill(), acc, Trigger.REPLAY, [route], approved_source=True)
    assert not from_generated.matches and from_approved.matches


def test_disabled_configuration_is_filtered() -> None:
    assert _route({"enabled": False}) == FilterReason.CONFIG_DISABLED


def test_account_filter_applies_in_addition_to_lists() -> None:
    cfg = {
        "accountIds": ["acc-1"],
        "entity": {"accountFilter": "customFields != null AND customFields.country == UK"},
    }
    assert _route(cfg, customFields={"country": "UK"}) is None
    assert _route(cfg, customFields={"country": "US"}) == FilterReason.FILTER_FALSE
    assert _route(cfg, customFields={}) == FilterReason.FILTER_FALSE
    assert _route(cfg, "acc-2", customFields={"country": "UK"}) == FilterReason.NOT_IN_ALLOW_LIST


def test_address_country_filter() -> None:
    cfg = {"entity": {"accountFilter": "address.country == US"}}
    assert _route(cfg, address={"country": "US"}) is None
    assert _route(cfg, address=None) == FilterReason.FILTER_FALSE


def test_replay_can_be_narrowed_to_configurations() -> None:
    routes = [compile_route(config("a")), compile_route(config("b"))]
    result = route_bill(bill(), account(), Trigger.REPLAY, routes, True, frozenset({"b"}))
    assert [m.route.config.id for m in result.matches] == ["b"]
    assert result.filtered[FilterReason.REPLAY_NOT_SELECTED] == 1


def test_every_configuration_is_decided_independently() -> None:
    routes = [
        compile_route(config("a")),
        compile_route(config("b", restrictedAccountIds=["acc-1"])),
        compile_route(config("c", destination="XERO")),
    ]
    result = route_bill(bill(), account(), Trigger.GENERATED, routes)
    assert sorted(m.route.config.id for m in result.matches) == ["a", "c"]
    assert result.filtered == {FilterReason.DENY_LIST: 1}


def _lines() -> list:
    return [
        line("l1", "USAGE", "30", aggregationId="agg-b"),
        line("l2", "MINIMUM_SPEND", "5"),
        line("l3", "USAGE_CREDIT", "-12.5", aggregationId="agg-a"),
        line("l4", "STANDING_CHARGE", "30", aggregationId=None),
        line("l5", "USAGE", "0.01", aggregationId="agg-a"),
    ]


def test_excluded_line_item_types_are_removed_from_a_copy() -> None:
    original = bill(lines=_lines())
    entity = config(
        entity={"excludedLineItemTypes": ["MINIMUM_SPEND", "USAGE_CREDIT"]}
    ).entity_config
    prepared = prepare_bill(original, entity)
    assert [li.id for li in prepared.line_items] == ["l1", "l4", "l5"]
    assert len(original.line_items) == 5  # the input bill is untouched
    kinds = {li.line_item_type for li in prepared.line_items}
    assert LineItemType.MINIMUM_SPEND not in kinds


def test_sort_by_subtotal_is_ascending_and_stable() -> None:
    entity = config(entity={"sortLineItemsBy": "SUBTOTAL"}).entity_config
    prepared = prepare_bill(bill(lines=_lines()), entity)
    assert [li.id for li in prepared.line_items] == ["l3", "l5", "l2", "l1", "l4"]
    assert next(li.subtotal for li in prepared.line_items) == Decimal("-12.5")


def test_sort_by_aggregation_id_puts_missing_last() -> None:
    entity = config(entity={"sortLineItemsBy": "AGGREGATION_ID"}).entity_config
    prepared = prepare_bill(bill(lines=_lines()), entity)
    assert [li.id for li in prepared.line_items] == ["l3", "l5", "l1", "l2", "l4"]


def test_sort_none_keeps_order() -> None:
    prepared = prepare_bill(bill(lines=_lines()), config().entity_config)
    assert [li.id for li in prepared.line_items] == ["l1", "l2", "l3", "l4", "l5"]


@dataclass(frozen=True)
class _Facts:
    line_item_type: str
    subtotal: str
    aggregation_id: str | None


@given(
    lines=st.lists(
        st.builds(
            _Facts,
            st.sampled_from(["USAGE", "MINIMUM_SPEND", "USAGE_CREDIT"]),
            st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
            st.sampled_from([None, "", "a", "b"]),
        ),
        max_size=8,
    ),
    excluded=st.sampled_from([[], ["MINIMUM_SPEND"]]),
    sort=st.sampled_from(list(SortLineItemsBy)),
)
def test_kept_lines_follow_the_rule_written_plainly(
    lines: list[_Facts], excluded: list[str], sort: SortLineItemsBy
) -> None:
    """The fast paths (nothing excluded, no aggregation id to sort by) change nothing."""
    entity = config(
        entity={"excludedLineItemTypes": excluded, "sortLineItemsBy": sort.value}
    ).entity_config
    kept = [i for i, li in enumerate(lines) if li.line_item_type not in excluded]
    if sort is SortLineItemsBy.SUBTOTAL:
        kept.sort(key=lambda i: Decimal(lines[i].subtotal))
    elif sort is SortLineItemsBy.AGGREGATION_ID:
        kept.sort(key=lambda i: (lines[i].aggregation_id is None, lines[i].aggregation_id or ""))
    assert kept_line_indices(lines, entity) == kept


def test_dispatch_id_is_stable_and_sensitive_to_every_input() -> None:
    base = dispatch_id("bill-1", 3, "cfg", 2, Trigger.GENERATED)
    assert base == dispatch_id("bill-1", 3, "cfg", 2, Trigger.GENERATED)
    variants = {
        dispatch_id("bill-2", 3, "cfg", 2, Trigger.GENERATED),
        dispatch_id("bill-1", 4, "cfg", 2, Trigger.GENERATED),
        dispatch_id("bill-1", 3, "cfg2", 2, Trigger.GENERATED),
        dispatch_id("bill-1", 3, "cfg", 3, Trigger.GENERATED),
        dispatch_id("bill-1", 3, "cfg", 2, Trigger.APPROVED),
        dispatch_id("bill-1", 3, "cfg", 2, Trigger.REPLAY, "r1"),
    }
    assert base not in variants and len(variants) == 6
    # field boundaries cannot be confused
    assert dispatch_id("a", 12, "c", 1, Trigger.GENERATED) != dispatch_id(
        "a1", 2, "c", 1, Trigger.GENERATED
    )


def test_dispatch_ids_never_change_between_versions() -> None:
    """Sinks recognise a re-routed envelope by its id, across router upgrades too."""
    assert dispatch_id("bill-1", 3, "cfg-9", 2, Trigger.APPROVED) == (
        "dsp_6bef72688e4144a1b2fc605665a703a0"
    )
    assert dispatch_id("bill-1", 3, "cfg-9", 2, Trigger.REPLAY, "rep-1") == (
        "dsp_76b7680ba37c04fae80115b640f67549"
    )


def test_route_index_decides_exactly_like_route_bill() -> None:
    import random

    from shared.routing import RouteIndex

    rng = random.Random(3)
    accounts = [f"acc-{i}" for i in range(30)]
    cfgs = []
    for i in range(40):
        kwargs: dict = {"enabled": rng.random() > 0.2}
        if i % 3 == 0:
            kwargs["accountIds"] = rng.sample(accounts, 5)
        if i % 4 == 0:
            kwargs["restrictedAccountIds"] = rng.sample(accounts, 5)
        entity = {"onlySendBillOnApproval": i % 5 == 0}
        if i % 2:
            entity["accountFilter"] = f"customFields.n > {rng.randint(0, 9)}"
        cfgs.append(config(f"cfg-{i:02d}", entity=entity, **kwargs))
    routes = [compile_route(c) for c in cfgs]
    index = RouteIndex(routes)
    for acc_id in accounts:
        acc = account(acc_id, customFields={"n": rng.randint(0, 9)})
        for trigger in (Trigger.GENERATED, Trigger.APPROVED):
            plain = route_bill(bill(account_id=acc_id), acc, trigger, routes)
            fast = index.route(
                acc_id, acc.model_dump(by_alias=True), trigger, trigger is Trigger.APPROVED
            )
            assert sorted(m.route.config.id for m in fast.matches) == sorted(
                m.route.config.id for m in plain.matches
            )
            assert sum(fast.filtered.values()) == sum(plain.filtered.values())


def test_route_index_reuses_a_result_only_for_the_same_account_snapshot() -> None:
    from shared.routing import RouteIndex

    cfg = config("cfg-f", entity={"accountFilter": "customFields.n > 5"})
    index = RouteIndex([compile_route(cfg)])
    low = account("acc-1", customFields={"n": 1}).model_dump(by_alias=True)
    high = account("acc-1", customFields={"n": 9}).model_dump(by_alias=True)
    first = index.route("acc-1", low, Trigger.GENERATED, False)
    assert index.route("acc-1", low, Trigger.GENERATED, False) is first
    assert first.matches == [] and first.filtered[FilterReason.FILTER_FALSE] == 1
    # A new snapshot of the account (the accounts table changed) is decided afresh.
    assert [
        m.route.config.id for m in index.route("acc-1", high, Trigger.GENERATED, False).matches
    ] == ["cfg-f"]
    # A replay's selection is never answered from the cache.
    narrowed = index.route("acc-1", high, Trigger.GENERATED, False, frozenset({"other"}))
    assert narrowed.matches == [] and narrowed.filtered[FilterReason.REPLAY_NOT_SELECTED] == 1
