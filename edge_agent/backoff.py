"""Jittered, capped exponential backoff ("full jitter"), shared by drivers and sinks.

Full jitter spreads the reconnect attempts of many gateways (or many devices behind
one gateway) so that a recovering broker or PLC is not hit by all of them at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delay before the next attempt: ``uniform(0, min(cap, initial * 2**attempt))``.

    ``minimum`` keeps a floor so a tight failure loop never spins.
    """

    initial: float = 0.5
    cap: float = 30.0
    minimum: float = 0.05
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.initial * (2 ** min(self.attempt, 32)))
        self.attempt += 1
        return max(self.minimum, self.rng.uniform(0.0, ceiling))

    def reset(self) -> None:
        self.attempt = 0
