"""Capped exponential backoff with full jitter, honouring a provider's Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 60.0

    def delay(
        self, attempt: int, retry_after: float | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before attempt `attempt + 1` (attempt counts from 1)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        rng = rng or random.Random()
        if retry_after is not None:
            # The provider knows best: never earlier than it asked, a little later to spread.
            return min(self.max_delay, retry_after + rng.uniform(0, min(1.0, ceiling / 4)))
        return rng.uniform(ceiling / 2, ceiling)
