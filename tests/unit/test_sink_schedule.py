"""Scheduled delivery's pure part: boundaries, latest version wins, ownership."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.contracts import DispatchEnvelope
from shared.sinks.schedule import PendingSchedule, due_at
from shared.sinks.standard_tests import generated_envelope
from tests.support.builders import account, bill, config

T0 = datetime(2026, 11, 29, 12, 10, tzinfo=UTC)
HOUR = 3600.0


def envelope(bill_id: str, version: int, config_id: str = "cfg-s") -> DispatchEnvelope:
    return generated_envelope(config(config_id), bill(bill_id, version=version), account(), T0)


def test_due_at_the_first_boundary_after_collection() -> None:
    assert due_at(T0, HOUR) == datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
    exactly = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
    assert due_at(exactly, HOUR) == datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
    assert due_at(T0, 60) == datetime(2026, 11, 29, 12, 11, tzinfo=UTC)


def collect(pending: PendingSchedule, env: DispatchEnvelope, at: datetime) -> bool:
    collected = pending.collect(env, at)
    if collected is None:
        return False
    pending.apply(collected.record.key, collected.record)
    return True


def test_latest_version_replaces_earlier_and_keeps_its_round() -> None:
    pending = PendingSchedule("stripe")
    assert collect(pending, envelope("b-1", 1), T0)
    assert collect(pending, envelope("b-1", 3), T0 + timedelta(minutes=40))
    assert not collect(pending, envelope("b-1", 2), T0 + timedelta(minutes=45))  # late, older
    assert len(pending) == 1
    due = pending.due(datetime(2026, 11, 29, 13, 0, tzinfo=UTC), lambda _: HOUR)
    assert [(r.bill_id, r.bill_version) for r in due] == [("b-1", 3)]


def test_nothing_is_due_before_the_boundary_and_only_owned_records_are() -> None:
    pending = PendingSchedule("stripe")
    collect(pending, envelope("b-1", 1, "cfg-a"), T0)
    collect(pending, envelope("b-2", 1, "cfg-b"), T0 + timedelta(minutes=1))
    assert pending.due(T0 + timedelta(minutes=49), lambda _: HOUR) == []
    later = T0 + timedelta(minutes=50)
    assert [r.bill_id for r in pending.due(later, lambda _: HOUR)] == ["b-1", "b-2"]
    only_a = pending.due(later, lambda _: HOUR, owned=lambda r: r.integration_config_id == "cfg-a")
    assert [r.bill_id for r in only_a] == ["b-1"]


def test_a_record_replaced_while_delivering_is_not_the_current_one() -> None:
    pending = PendingSchedule("stripe")
    collect(pending, envelope("b-1", 1), T0)
    (sent,) = pending.due(T0 + timedelta(hours=1), lambda _: HOUR)
    assert pending.is_current(sent)
    collect(pending, envelope("b-1", 2), T0 + timedelta(hours=1))
    assert not pending.is_current(sent)  # its tombstone would delete version 2: kept


def test_other_families_records_are_ignored() -> None:
    pending = PendingSchedule("xero")
    other = PendingSchedule("stripe").collect(envelope("b-1", 1), T0)
    assert other is not None
    pending.apply(other.record.key, other.record)
    assert len(pending) == 0


def test_a_parked_record_is_due_at_its_reset_not_at_a_boundary() -> None:
    pending = PendingSchedule("stripe")
    reset = datetime(2026, 11, 30, tzinfo=UTC)
    parked = pending.collect(envelope("b-1", 1), T0, partition=2, not_before=reset)
    assert parked is not None
    pending.apply(parked.record.key, parked.record)
    assert pending.due(T0 + timedelta(hours=2), lambda _: 60.0) == []
    (due,) = pending.due(reset, lambda _: 60.0)
    assert due.partition == 2
    # Parked again while being delivered (the quota is still spent): a different record,
    # so the delivered one's tombstone must not delete it.
    again = pending.collect(envelope("b-1", 1), reset, 2, reset + timedelta(days=1))
    assert again is not None
    pending.apply(again.record.key, again.record)
    assert not pending.is_current(due)
