"""The rate-limit contract (``hubbub.ratelimit.base``), against memory and a real Redis.

Windows are wall-clock seconds inside ``limits`` (they must read the same in Redis for every
node), so the refill tests wait one real window: the shortest ``limits`` allows.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from hubbub.backend_url import backend_of, limits_storage_uri
from hubbub.broker.base import open_broker
from hubbub.errors import RateLimited
from hubbub.presence.base import open_presence
from hubbub.ratelimit.base import (
    FailureLimiter,
    SendLimiter,
    open_failure_limiter,
    open_send_limiter,
)
from hubbub.ratelimit.redis import RedisFailureLimiter, RedisSendLimiter
from hubbub.typing.base import open_typing
from tests.contract.backends import each_backend, redis_only, unique_prefix, url_for

UNREACHABLE = "redis://127.0.0.1:1/0"


def sends(kind: str, per_second: float = 5, burst: int = 5, prefix: str = "") -> SendLimiter:
    return open_send_limiter(url_for(kind), per_second, burst, key_prefix=prefix or unique_prefix())


def failures(
    kind: str, per_name: int = 2, per_address: int = 3, prefix: str = ""
) -> FailureLimiter:
    return open_failure_limiter(
        url_for(kind), per_name, per_address, 1, key_prefix=prefix or unique_prefix()
    )


async def burst(limiter: SendLimiter, user_id: str, count: int) -> None:
    for _ in range(count):
        await limiter.check(user_id)


async def fail(limiter: FailureLimiter, name: str, address: str | None) -> None:
    async with limiter.attempt(name, address) as attempt:
        attempt.failed()


# sends ------------------------------------------------------------------------------------


@each_backend
async def test_a_burst_then_refused_with_retry_after(kind: str) -> None:
    limiter = sends(kind, per_second=5, burst=5)
    await burst(limiter, "u", 5)
    with pytest.raises(RateLimited) as refused:
        await limiter.check("u")
    assert refused.value.code == "rate_limited"
    assert refused.value.retry_after == 1
    assert "at most 5 per 1 s" in refused.value.message
    with pytest.raises(RateLimited):  # a refusal is not counted, and does not unblock
        await limiter.check("u")


@each_backend
async def test_the_window_refills(kind: str) -> None:
    limiter = sends(kind, per_second=3, burst=3)
    await burst(limiter, "u", 3)
    with pytest.raises(RateLimited):
        await limiter.check("u")
    await asyncio.sleep(1.05)
    await burst(limiter, "u", 3)
    with pytest.raises(RateLimited):
        await limiter.check("u")


@each_backend
async def test_users_are_limited_independently(kind: str) -> None:
    limiter = sends(kind, per_second=2, burst=2)
    await burst(limiter, "a", 2)
    with pytest.raises(RateLimited):
        await limiter.check("a")
    await burst(limiter, "b", 2)


@each_backend
async def test_a_rate_or_burst_of_zero_never_refuses(kind: str) -> None:
    for limiter in (sends(kind, per_second=0, burst=5), sends(kind, per_second=5, burst=0)):
        await burst(limiter, "u", 50)


@redis_only
async def test_nodes_share_one_limit_in_redis(kind: str) -> None:
    prefix = unique_prefix()
    a, b = sends(kind, burst=4, prefix=prefix), sends(kind, burst=4, prefix=prefix)
    await burst(a, "u", 2)
    await burst(b, "u", 2)
    with pytest.raises(RateLimited):
        await a.check("u")
    with pytest.raises(RateLimited):
        await b.check("u")
    other_deployment = sends(kind, burst=4)  # another prefix: its own counts
    await burst(other_deployment, "u", 4)


async def test_memory_limits_count_per_process() -> None:
    a, b = sends("memory", burst=2), sends("memory", burst=2)
    await burst(a, "u", 2)
    await burst(b, "u", 2)


async def test_redis_unreachable_limits_on_this_node(caplog: pytest.LogCaptureFixture) -> None:
    limiter = open_send_limiter(UNREACHABLE, 3, 3, key_prefix=unique_prefix())
    assert isinstance(limiter, RedisSendLimiter)
    with caplog.at_level(logging.WARNING, logger="hubbub.ratelimit"):
        await burst(limiter, "u", 3)
        with pytest.raises(RateLimited) as refused:
            await limiter.check("u")
    assert refused.value.retry_after >= 1
    assert "limiting on this node" in caplog.text


# failed sign-ins ---------------------------------------------------------------------------


@each_backend
async def test_failures_per_name_are_capped_and_successes_do_not_count(kind: str) -> None:
    limiter = failures(kind, per_name=2, per_address=100)
    for _ in range(5):
        async with limiter.attempt("alice", "10.0.0.1"):
            pass  # right password: not counted
    await fail(limiter, "alice", "10.0.0.1")
    await fail(limiter, "alice", "10.0.0.2")
    ran = False
    with pytest.raises(RateLimited) as refused:
        async with limiter.attempt("alice", "10.0.0.3"):
            ran = True
    assert not ran  # refused before the (costly) attempt
    assert refused.value.code == "too_many_attempts"
    assert refused.value.retry_after >= 1
    assert "for this username" in refused.value.message
    async with limiter.attempt("bob", "10.0.0.1"):
        pass


@each_backend
async def test_failures_per_address_are_capped(kind: str) -> None:
    limiter = failures(kind, per_name=100, per_address=3)
    for name in ("a", "b", "c"):
        await fail(limiter, name, "10.0.0.9")
    with pytest.raises(RateLimited) as refused:
        async with limiter.attempt("d", "10.0.0.9"):
            pass
    assert "for this address" in refused.value.message
    async with limiter.attempt("d", "10.0.0.8"):
        pass
    async with limiter.attempt("d", None):  # no address: only the name counts
        pass


@each_backend
async def test_failures_leave_the_window(kind: str) -> None:
    limiter = failures(kind, per_name=1, per_address=100)
    await fail(limiter, "alice", None)
    with pytest.raises(RateLimited):
        await fail(limiter, "alice", None)
    await asyncio.sleep(1.05)
    async with limiter.attempt("alice", None):
        pass


@each_backend
async def test_attempts_in_flight_count_against_concurrent_ones(kind: str) -> None:
    limiter = failures(kind, per_name=1, per_address=100)
    async with limiter.attempt("alice", "10.0.0.1"):
        with pytest.raises(RateLimited):
            async with limiter.attempt("alice", "10.0.0.2"):
                pass
    async with limiter.attempt("alice", "10.0.0.2"):  # the first did not fail: free again
        pass


@each_backend
async def test_a_cap_of_zero_disables_it(kind: str) -> None:
    limiter = failures(kind, per_name=0, per_address=0)
    for _ in range(10):
        await fail(limiter, "alice", "10.0.0.1")


@redis_only
async def test_nodes_share_failure_counts_in_redis(kind: str) -> None:
    prefix = unique_prefix()
    a = failures(kind, per_name=2, prefix=prefix)
    b = failures(kind, per_name=2, prefix=prefix)
    await fail(a, "alice", None)
    await fail(b, "alice", None)
    with pytest.raises(RateLimited):
        async with a.attempt("alice", None):
            pass


async def test_redis_unreachable_counts_failures_on_this_node() -> None:
    limiter = open_failure_limiter(UNREACHABLE, 2, 100, 1, key_prefix=unique_prefix())
    assert isinstance(limiter, RedisFailureLimiter)
    await fail(limiter, "alice", None)
    await fail(limiter, "alice", None)
    with pytest.raises(RateLimited):
        async with limiter.attempt("alice", None):
            pass


# one reading of the URL --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "backend"),
    [
        ("memory://", "memory"),
        ("redis://127.0.0.1:6379/0", "redis"),
        ("rediss://cache.example:6380/1", "redis"),
        ("unix:///run/redis.sock?db=2", "redis"),
    ],
)
def test_every_backend_reads_the_url_the_same_way(url: str, backend: str) -> None:
    assert backend_of(url) == backend
    opened = [
        open_broker(url),
        open_presence(url),
        open_typing(url),
        open_send_limiter(url, 1, 1),
        open_failure_limiter(url, 1, 1, 1),
    ]
    names = [type(o).__name__ for o in opened]
    assert all(n.startswith("Memory" if backend == "memory" else "Redis") for n in names), names


def test_limits_storage_spells_each_redis_url() -> None:
    assert limits_storage_uri("redis://h:1/0") == "async+redis://h:1/0"
    assert limits_storage_uri("rediss://h:1/0") == "async+rediss://h:1/0"
    assert limits_storage_uri("unix:///run/r.sock?db=1") == "async+redis+unix:///run/r.sock?db=1"


@pytest.mark.parametrize("url", ["nats://x", "redis+sentinel://x", "localhost:6379", ""])
def test_an_unknown_scheme_is_refused_by_every_factory(url: str) -> None:
    for opener in (
        lambda: open_broker(url),
        lambda: open_presence(url),
        lambda: open_typing(url),
        lambda: open_send_limiter(url, 1, 1),
        lambda: open_failure_limiter(url, 1, 1, 1),
    ):
        with pytest.raises(ValueError, match="unknown broker URL scheme"):
            opener()
