"""A faithful local Paddle Billing API (customers, addresses, businesses, transactions).

Usage from tests::

    fake = FakePaddle(["pdl_sdbx_apikey_x"], environment="sandbox")
    url = await fake.start()
    ids = fake.seed_customer(name="Acme", country="US")

From the command line: ``python -m fakes.paddle --port 12112``. See docs/destinations/paddle.md.
"""

from .config import FakePaddleConfig, FaultRule, RateLimitConfig
from .fake import FakePaddle

__all__ = ["FakePaddle", "FakePaddleConfig", "FaultRule", "RateLimitConfig"]
