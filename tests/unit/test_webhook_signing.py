"""The Hubbub-Signature header (API.md "Webhooks"): what a receiver checks, including the ways a
forged, altered, replayed or malformed delivery must fail."""

from __future__ import annotations

import hashlib
import hmac

from hubbub.webhooks.signing import sign, signature, verify

BODY = b'{"id":"7","type":"message","room_id":"r","data":{},"created_at":"x"}'


def test_the_header_is_the_documented_hmac_of_t_dot_body() -> None:
    mac = hmac.new(b"s3cret", b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signature("s3cret", BODY, 1700000000) == f"t=1700000000,v1={mac}"
    assert sign("s3cret", BODY, now=1700000000.9) == f"t=1700000000,v1={mac}"


def test_verify_accepts_its_own_and_refuses_wrong_secret_body_or_time() -> None:
    header = sign("s3cret", BODY, now=1_000_000)
    assert verify("s3cret", BODY, header, now=1_000_100)
    assert not verify("other", BODY, header, now=1_000_100)
    assert not verify("s3cret", BODY + b" ", header, now=1_000_100)
    assert not verify("s3cret", BODY, header, now=1_000_301)  # replayed after the tolerance
    assert not verify("s3cret", BODY, header, now=999_600)  # from the future
    assert verify("s3cret", BODY, header, tolerance=1e9, now=5_000_000)


def test_one_matching_v1_of_several_is_enough_for_secret_rotation() -> None:
    header = sign("new", BODY, now=1_000_000)
    old = sign("old", BODY, now=1_000_000).split("v1=")[1]
    assert verify("new", BODY, f"{header},v1={old}", now=1_000_000)
    assert verify("old", BODY, f"{header},v1={old}", now=1_000_000)
    assert not verify("third", BODY, f"{header},v1={old}", now=1_000_000)


def test_malformed_headers_fail_without_raising() -> None:
    good = sign("s", BODY, now=1_000_000)
    for header in ("", "t=1000000", "v1=abc", "t=x,v1=abc", "garbage", good.replace(",", ";")):
        assert not verify("s", BODY, header, now=1_000_000), header
