"""The stream limits without a server: slots are counted exactly, and the waits they answer
with are spread (see ``tests/integration/test_stream_limits.py`` for the transports)."""

from __future__ import annotations

import random

import pytest

from hubbub.transports.limits import ServerBusy, StreamLimits, TooManyStreams


def test_the_cap_is_per_user_and_every_release_gives_a_slot_back() -> None:
    limits = StreamLimits(max_per_user=2, max_pending=0, retry_ms=3000)
    limits.claim("a")
    limits.claim("a")
    limits.claim("b")
    with pytest.raises(TooManyStreams) as refused:
        limits.claim("a")
    assert refused.value.status == 429 and refused.value.code == "too_many_streams"
    assert 3 <= refused.value.retry_after <= 5
    limits.release("a")
    limits.claim("a")
    for _ in range(2):
        limits.release("a")
    limits.release("b")
    assert limits.users == 0  # nobody's entry outlives their streams


def test_admission_counts_streams_being_set_up() -> None:
    limits = StreamLimits(max_per_user=0, max_pending=2, retry_ms=1000)
    limits.admit()
    limits.admit()
    with pytest.raises(ServerBusy) as busy:
        limits.admit()
    assert busy.value.status == 503 and busy.value.code == "server_busy"
    assert busy.value.body()["error"]["details"] == {"retry_after": busy.value.retry_after}
    limits.settled()
    limits.admit()
    assert limits.pending == 2


def test_zero_means_no_limit() -> None:
    limits = StreamLimits(max_per_user=0, max_pending=0, retry_ms=3000)
    for _ in range(1000):
        limits.admit()
        limits.claim("a")
    assert limits.held("a") == 1000


def test_retry_and_retry_after_are_spread_never_sooner() -> None:
    limits = StreamLimits(1, 1, 3000, rng=random.Random(7))
    values = [limits.jittered_retry_ms() for _ in range(500)]
    assert min(values) >= 3000 and max(values) < 6000
    assert len(set(values)) > 400
    assert {limits.retry_after() for _ in range(500)} == {3, 4, 5}
    assert StreamLimits(1, 1, 3000, spread=0).jittered_retry_ms() == 3000
    assert StreamLimits(1, 1, 200).retry_after() == 1
