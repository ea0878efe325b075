"""A small generic batching provider for the sink framework's tests and benchmarks.

It behaves like the providers the framework must serve next (Xero, Salesforce): invoices
are upserted in batches by our own reference, each item answered on its own (one bad
invoice never fails the others), limits per tenant (calls per window, concurrent calls,
a daily quota) reported in rate headers and enforced with 429 + Retry-After, an OAuth 2
token endpoint with rotating refresh tokens and a grace period, and fault injection.

    fake = FakeBatching(window_calls=60, window_seconds=60, concurrent=5)
    url = await fake.start()

`BatchingDestination` (fakes/batching/destination.py) is the minimal destination that
talks to it; it exists to prove the framework's batch path, not to ship."""

from .fake import FakeBatching, FakeBatchingConfig

__all__ = ["FakeBatching", "FakeBatchingConfig"]
