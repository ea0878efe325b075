"""Parts of the test destinations that stand in for a provider in unit tests."""

from __future__ import annotations

from shared.contracts import Destination
from shared.credentials import Credential
from shared.sinks.errors import SinkError
from shared.sinks.ratelimit import RateSpec


class NoProvider:
    """The provider side of a test destination that calls no provider: no per-second
    limit, no client, and no provider error to classify. Put it before the destination
    base class: `class Scripted(NoProvider, SinkDestination[None])`."""

    def rate_spec(self, destination: Destination, credential: Credential) -> RateSpec:
        return RateSpec(None)

    def make_client(self, destination: Destination, credential: Credential) -> None:
        return None

    def classify(self, exc: BaseException) -> SinkError | None:
        return None
