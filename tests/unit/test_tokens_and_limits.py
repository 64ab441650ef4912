from __future__ import annotations

import time

import jwt
import pytest

from hubbub.auth.tokens import TokenSigner
from hubbub.errors import RateLimited, Unauthenticated
from hubbub.ratelimit.memory import MemorySendLimiter

SECRET = "unit-test-secret-0123456789-abcdefghijklmnop"


def test_round_trip() -> None:
    signer = TokenSigner(SECRET)
    claims = signer.verify(signer.issue("u1", "s1", "access", 60), "access")
    assert claims["sub"] == "u1"
    assert claims["sid"] == "s1"


@pytest.mark.parametrize(
    "token",
    [
        jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, key=None, algorithm="none"),
        jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, SECRET[::-1], algorithm="HS256"),
        jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, SECRET, algorithm="HS512"),
        jwt.encode({"sub": "u1"}, SECRET, algorithm="HS256"),
        "not.a.jwt",
    ],
    # Named, not the tokens (their exp is the time of collection): pytest-xdist needs every
    # worker to collect the same ids.
    ids=["alg-none", "other-secret", "hs512", "no-exp", "not-a-jwt"],
)
def test_rejects_anything_but_hs256_with_exp(token: str) -> None:
    with pytest.raises(Unauthenticated):
        TokenSigner(SECRET).verify(token, "access")


def test_expired() -> None:
    token = jwt.encode({"sub": "u1", "exp": int(time.time()) - 5}, SECRET, algorithm="HS256")
    with pytest.raises(Unauthenticated) as info:
        TokenSigner(SECRET).verify(token, "access")
    assert info.value.code == "token_expired"


def test_session_token_is_not_an_access_token() -> None:
    signer = TokenSigner(SECRET)
    with pytest.raises(Unauthenticated):
        signer.verify(signer.issue("u1", "s1", "session", 60), "access")


def test_a_token_checked_before_still_expires_and_keeps_its_type() -> None:
    """Verified tokens are remembered (a client opens many streams with one token); the
    remembered answer still ends at ``exp`` and is still only good for its own type."""
    signer = TokenSigner(SECRET)
    exp = int(time.time()) + 2
    token = jwt.encode({"sub": "u1", "typ": "access", "exp": exp}, SECRET, algorithm="HS256")
    assert signer.verify(token, "access")["sub"] == "u1"
    assert signer.verify(token, "access")["sub"] == "u1"
    with pytest.raises(Unauthenticated) as info:
        signer.verify(token, "session")
    assert info.value.code == "invalid_token"
    time.sleep(max(0.0, exp - time.time()) + 0.05)
    with pytest.raises(Unauthenticated) as info:
        signer.verify(token, "access")
    assert info.value.code == "token_expired"
    # a tampered copy of a remembered token is checked, not looked up
    good = signer.issue("u1", "s1", "access", 60)
    assert signer.verify(good, "access")["sid"] == "s1"
    head, body, sig = good.split(".")
    with pytest.raises(Unauthenticated):
        signer.verify(f"{head}.{body}.{sig[:-2]}AA", "access")


async def test_send_limiter_burst_then_429_with_retry_after() -> None:
    limiter = MemorySendLimiter(10, 20)
    for _ in range(20):
        await limiter.check("u")
    with pytest.raises(RateLimited) as info:
        await limiter.check("u")
    assert info.value.retry_after >= 1
    await limiter.check("someone-else")
