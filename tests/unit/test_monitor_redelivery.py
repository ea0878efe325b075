"""A batch redelivered after a crash between the state write and the commit is recognised
by its offsets, however much larger than the window of remembered ids it is."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import ConsumerRecord

from services.monitor.service import MonitorService
from services.monitor.settings import MonitorSettings
from shared.contracts import Destination, EventType, IntegrationEvent
from shared.settings import Settings


def _record(offset: int, event_id: str) -> ConsumerRecord[bytes, bytes]:
    value = IntegrationEvent(
        id=event_id,
        event_type=EventType.PERFORM_ERROR,
        message="boom",
        integration_config_id="cfg-1",
        destination=Destination.STRIPE_TEST,
        dt_created=datetime.now(UTC),
    ).to_bytes()
    return ConsumerRecord("integration-results", 2, offset, 0, 0, b"cfg-1", value, None, 5, 0, [])


async def test_redelivered_batch_larger_than_the_id_window_counts_once() -> None:
    service = MonitorService(Settings(), MonitorSettings(remembered_ids=10, error_threshold=1000))
    batch = [_record(100 + i, f"evt-{i}") for i in range(50)]
    for record in batch + batch:  # applied, then redelivered from the last commit
        service._handle(record)
    assert service.states["cfg-1"].successive_errors == 50
    assert service.states["cfg-1"].applied_offsets == {"integration-results/2": 149}
    service._handle(_record(150, "evt-49"))  # a later copy of a recent event: its id counts once
    assert service.states["cfg-1"].successive_errors == 50
    service._handle(_record(151, "evt-new"))
    assert service.states["cfg-1"].successive_errors == 51
    await service.consumer.stop()
    await service.producer.stop()
