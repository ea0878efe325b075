"""A faithful local fake of the Stripe API (invoices, invoice items, customers).

Usage from tests::

    fake = FakeStripe(["sk_test_123"])
    url = await fake.start()
    client = stripe.StripeClient("sk_test_123", base_addresses={"api": url},
                                 http_client=stripe.AIOHTTPClient())

From the command line: ``python -m fakes.stripe --port 12111 --keys sk_test_123``.
See docs/fake-stripe.md.
"""

from .config import FakeStripeConfig, FaultConfig, FaultRule, RateLimitConfig, WebhookConfig
from .fake import FakeStripe
from .webhooks import signature_header

__all__ = [
    "FakeStripe",
    "FakeStripeConfig",
    "FaultConfig",
    "FaultRule",
    "RateLimitConfig",
    "WebhookConfig",
    "signature_header",
]
