"""The run history an operator reads after a fault run (issue 7 item 4): the stored status
of every run is its final one, through the control plane's API."""

from __future__ import annotations

import aiohttp
import pytest

from shared.contracts import RunStatus
from shared.settings import Settings
from tests.integration.test_sink_guarantees import wait_until
from tests.integration.test_stripe_sink_e2e import KEY, bills, publish_envelopes
from tests.support.builders import config
from tests.support.control import Api, running_control_plane
from tests.support.stripe_stack import stripe_stack

pytestmark = pytest.mark.kafka


async def test_final_status_wins_in_the_api_after_retries(settings: Settings) -> None:
    async with stripe_stack(settings) as stack:
        await stack.credential("cred-1", KEY)
        cfg = config("cfg-s", "STRIPE_TEST", integrationCredentialsId="cred-1")
        await stack.configs(cfg)
        async with (
            running_control_plane(settings) as handle,
            aiohttp.ClientSession() as session,
            stack.sink(max_attempts=3),
        ):
            api = Api(handle, session)
            # One bill completes on its third attempt (two 500s before it).
            stack.fake.configure(
                faults={
                    "rules": [
                        {
                            "path_prefix": "/v1/invoices",
                            "method": "POST",
                            "count": 2,
                            "replayed": False,
                        }
                    ]
                }
            )
            await publish_envelopes(stack, cfg, bills(1, prefix="ok"))
            await stack.wait_final_runs(1)
            # Three bills fail for good after three attempts.
            stack.fake.configure(faults={"error_rate": 1.0, "errors_replayed": False})
            await publish_envelopes(stack, cfg, bills(3, prefix="bad"))
            runs = await stack.wait_final_runs(4)
            assert sorted(r.status.value for r in runs.values()) == ["COMPLETE"] + ["ERROR"] * 3
            assert max(r.attempt for r in runs.values()) == 3

            async def stored(status: str) -> list[str]:
                code, page = await api.call("GET", f"/integrationruns?status={status}")
                assert code == 200
                return sorted(r["entityId"] for r in page["data"])

            async def settled() -> bool:
                return len(await stored("ERROR")) == 3 and len(await stored("COMPLETE")) == 1

            await wait_until(settled, "the final statuses in the store", timeout=30)
            assert await stored("ERROR") == ["bad-0", "bad-1", "bad-2"]
            assert await stored("COMPLETE") == ["ok-0"]
            for waiting in (
                RunStatus.AWAITING_RETRY,
                RunStatus.RATE_LIMIT_RETRY,
                RunStatus.STARTED,
            ):
                assert await stored(waiting.value) == []
