"""Reconnect and retry delays: exponential with full jitter, so that a thousand clients a
restart dropped at once do not come back in the same instant."""

from __future__ import annotations

import random

RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


def delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds before try number ``attempt`` + 1 (0 for the first retry)."""
    return float(min(cap, base * (2 ** min(attempt, 16))) * random.uniform(0.5, 1.0))
