"""The retry policy: how long a delivery (or a dispatcher's job) waits before its next attempt.

The store only records when an attempt is due (``next_attempt_at``); the engine decides it.
"""

from __future__ import annotations

import random

__all__ = ["backoff"]


def backoff(attempt: int, first_s: float, max_s: float, floor_s: float) -> float:
    """Seconds before retry ``attempt`` (1-based): exponential with jitter, never below a floor."""
    ceiling = min(max_s, first_s * 2 ** (attempt - 1))
    return max(floor_s, random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter, not crypto
