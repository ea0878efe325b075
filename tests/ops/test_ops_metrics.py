"""The operations metrics record what they say: per-configuration runs, the last COMPLETE
run, pending retries, auth failures per credential, runs by trigger, dead letters by a
bounded reason, build info."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from shared.buildinfo import build_commit, build_version
from shared.contracts import DispatchEnvelope, RunStatus, Trigger
from shared.kafka.deadletter import reason_kind
from shared.sinks import metrics as m
from tests.support.builders import account, bill, config


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def envelope(config_id: str, cred: str | None, resend: str | None = None) -> DispatchEnvelope:
    cfg = config(config_id, "STRIPE_TEST", integrationCredentialsId=cred)
    return DispatchEnvelope(
        dispatch_id=f"d-{config_id}-{resend}",
        trigger=Trigger.GENERATED,
        integration_config_id=cfg.id,
        integration_config_version=cfg.version,
        integration_config=cfg,
        bill=bill("bill-m"),
        account=account("acc-1"),
        routed_at="2026-11-29T00:00:00Z",
        source="t/0/0",
        resend_of_run_id=resend,
    )


def test_a_final_run_is_counted_per_configuration_credential_and_trigger() -> None:
    before = value("billsync_sink_configuration_runs_total", destination="stripe",
                   integration_config_id="cfg-m1", status="AUTH_FAILED")  # fmt: skip
    m.record_run("stripe", envelope("cfg-m1", "cred-m1"), RunStatus.AUTH_FAILED)
    assert value("billsync_sink_configuration_runs_total", destination="stripe",
                 integration_config_id="cfg-m1", status="AUTH_FAILED") == before + 1  # fmt: skip
    assert value("billsync_sink_credential_auth_failures_total", destination="stripe",
                 credential_id="cred-m1") >= 1  # fmt: skip
    assert (
        REGISTRY.get_sample_value(
            "billsync_sink_configuration_last_complete_timestamp_seconds",
            {"destination": "stripe", "integration_config_id": "cfg-m1"},
        )
        is None
    )  # no COMPLETE yet

    resends = value("billsync_sink_runs_by_trigger_total", destination="stripe", trigger="RESEND")
    m.record_run("stripe", envelope("cfg-m1", "cred-m1", resend="run_1"), RunStatus.COMPLETE)
    assert value("billsync_sink_runs_by_trigger_total", destination="stripe",
                 trigger="RESEND") == resends + 1  # fmt: skip
    assert value("billsync_sink_configuration_last_complete_timestamp_seconds",
                 destination="stripe", integration_config_id="cfg-m1") > 1.7e9  # fmt: skip


async def test_a_retry_is_pending_while_it_waits() -> None:
    labels = {"destination": "stripe", "integration_config_id": "cfg-m2"}
    waiting = asyncio.create_task(m.wait_for_retry("stripe", "cfg-m2", 30))
    await asyncio.sleep(0)  # one turn of the loop: the task starts its wait
    assert value("billsync_sink_configuration_pending_retries", **labels) == 1
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert value("billsync_sink_configuration_pending_retries", **labels) == 0


def test_dead_letter_reasons_become_bounded_labels() -> None:
    assert reason_kind("schema: [{'loc': ('bill', 'id')}]") == "schema"
    assert reason_kind("unknown_entity: account 'acc-9' is neither embedded") == "unknown_entity"
    assert reason_kind("not a result record: 1 validation error") == "not_a_result_record"
    assert reason_kind("") == "unspecified"
    assert len(reason_kind("x" * 500 + ": y")) <= 40


def test_build_info_names_version_and_commit() -> None:
    labels = {"version": build_version(), "commit": build_commit()}
    assert build_version() != "unknown"
    assert REGISTRY.get_sample_value("billsync_build_info", labels) == 1.0
