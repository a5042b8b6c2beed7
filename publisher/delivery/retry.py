"""When to try a message again: exponential backoff with jitter, within mail.retry_for."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

#: No single wait grows beyond this, however many attempts have failed.
MAX_DELAY = timedelta(hours=4)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff starting at ``initial``, doubling per attempt, giving up after ``give_up_after``."""

    initial: timedelta
    give_up_after: timedelta
    rng: random.Random | None = None

    def delay(self, attempts: int) -> timedelta:
        """Return the jittered wait after the ``attempts``-th failed attempt (1 = first)."""
        base = self.initial * (2 ** max(0, min(attempts - 1, 30)))
        base = min(base, MAX_DELAY) if self.initial < MAX_DELAY else self.initial
        # "Equal jitter": never less than half the backoff, so retries of a whole send
        # spread out instead of hitting a recovering server in one wave.
        uniform = (self.rng or random).random()
        return base / 2 + base / 2 * uniform

    def next_attempt(
        self, attempts: int, first_attempt_at: datetime, now: datetime
    ) -> datetime | None:
        """Return when to try again after a temporary failure, or None to give up."""
        deadline = first_attempt_at + self.give_up_after
        if now >= deadline:
            return None
        return min(now + self.delay(attempts), deadline)
