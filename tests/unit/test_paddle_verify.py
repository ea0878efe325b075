"""The Paddle verifier: found through the control plane's registry; the key's environment
is checked before any call; Paddle's answer decides the rest."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from fakes.paddle import FakePaddle
from services.control.verifiers import verifier_for
from services.paddle_sink.client import API_BASE_ENV
from services.paddle_sink.verify import verify_paddle
from shared.contracts import Destination
from shared.credentials import PaddleCredential, StripeCredential

KEY = "pdl_sdbx_apikey_verify"


@pytest.fixture
async def paddle(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakePaddle]:
    fake = FakePaddle([KEY])
    monkeypatch.setenv(API_BASE_ENV[Destination.PADDLE_SANDBOX], await fake.start())
    yield fake
    await fake.stop()


def cred(key: str) -> PaddleCredential:
    return PaddleCredential(id="cred-v", api_key=SecretStr(key))


def test_the_paddle_verifier_is_found_through_the_registry() -> None:
    assert verifier_for(Destination.PADDLE) is verify_paddle
    assert verifier_for(Destination.PADDLE_SANDBOX) is verify_paddle


async def test_verification(paddle: FakePaddle) -> None:
    sandbox = Destination.PADDLE_SANDBOX
    assert (await verify_paddle(cred(KEY), sandbox)).ok
    wrong = await verify_paddle(cred("pdl_live_apikey_x"), sandbox)
    assert not wrong.ok and not wrong.retriable and "live key" in str(wrong.reason)
    stripe = StripeCredential(id="s", api_key=SecretStr("sk_test_x"))
    assert "needs a PADDLE credential" in str((await verify_paddle(stripe, sandbox)).reason)
    assert paddle.stats["requests"] == 1  # only the good key reached Paddle
    refused = await verify_paddle(cred("pdl_sdbx_apikey_unknown"), sandbox)
    assert not refused.ok and not refused.retriable and "forbidden" in str(refused.reason)
    paddle.configure(faults={"rules": [{"path_prefix": "/", "status": 503}]})
    down = await verify_paddle(cred(KEY), sandbox)
    assert not down.ok and down.retriable
    await paddle.stop()
    gone = await verify_paddle(cred(KEY), sandbox)
    assert gone.retriable and "could not reach Paddle" in str(gone.reason)
