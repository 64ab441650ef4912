"""Abuse limits: the protocols in :mod:`hubbub.ratelimit.base` and their backends."""

from hubbub.ratelimit.base import (
    Attempt,
    FailureLimiter,
    SendLimiter,
    open_failure_limiter,
    open_send_limiter,
)

__all__ = ["Attempt", "FailureLimiter", "SendLimiter", "open_failure_limiter", "open_send_limiter"]
