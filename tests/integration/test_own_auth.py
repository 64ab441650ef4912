"""Your own authentication (API.md): access tokens signed by the application's identity service
(``--jwt-public-key``: RS256, ES256, EdDSA; PEM text, PEM file or JWKS file) accepted beside
Hubbub's own HS256 tokens, against real ``hubbub serve`` processes with key pairs made here."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from websockets.asyncio.client import connect

from tests.support import (
    SECRET,
    Server,
    assert_error,
    client,
    create_pg_database,
    drop_pg_database,
    open_stream,
    signup,
)

AUDIENCE = "chat.example"
FAST = {"HUBBUB_RATE_LIMIT_BURST": "1000", "HUBBUB_RATE_LIMIT_PER_SECOND": "1000"}
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class Signer:
    """One key pair of the "identity service"."""

    alg: str
    kid: str
    private: PrivateKey

    def pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def jwk(self) -> dict[str, Any]:
        to_jwk = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}[self.alg]
        out: dict[str, Any] = to_jwk.to_jwk(self.private.public_key(), as_dict=True)  # type: ignore[attr-defined]
        return {**out, "kid": self.kid, "use": "sig", "alg": self.alg}

    def token(
        self,
        sub: str,
        *,
        name: str | None = None,
        ttl: float = 300,
        kid: str | None = None,
        with_kid: bool = True,
        **claims: Any,
    ) -> str:
        body: dict[str, Any] = {"sub": sub, "exp": int(time.time() + ttl), "aud": AUDIENCE}
        if name is not None:
            body["name"] = name
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        headers = {"kid": kid or self.kid} if with_kid else None
        return jwt.encode(body, self.private, algorithm=self.alg, headers=headers)


def _signers() -> dict[str, Signer]:
    return {
        "RS256": Signer("RS256", "rsa-1", rsa.generate_private_key(65537, 2048)),
        "ES256": Signer("ES256", "ec-1", ec.generate_private_key(ec.SECP256R1())),
        "EdDSA": Signer("EdDSA", "ed-1", ed25519.Ed25519PrivateKey.generate()),
    }


SIGNERS = _signers()
OTHERS = _signers()  # same kinds and kids, keys nobody configured
ALGS = list(SIGNERS)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_token(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """A JWT signed with HMAC-SHA256 whatever its header says (PyJWT refuses to make these)."""
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(hmac.new(key, signing.encode(), hashlib.sha256).digest())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_sub() -> str:
    return f"ext-{uuid.uuid4().hex[:12]}"


# --- servers: the same keys given three ways --------------------------------------------------


@pytest.fixture(scope="module")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("keys")
    jwks = where / "jwks.json"
    jwks.write_text(json.dumps({"keys": [s.jwk() for s in SIGNERS.values()]}))
    pem = where / "keys.pem"
    # An unrelated RSA key first: a token without a kid is tried against each RSA key.
    unrelated = rsa.generate_private_key(65537, 2048).public_key()
    pem.write_text(
        unrelated.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        + "".join(s.pem() for s in SIGNERS.values())
    )
    return {"jwks": jwks, "pem": pem}


def _start(server: Server) -> Iterator[Server]:
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pem_text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """PEM text in the environment, with an audience."""
    env = {
        **FAST,
        "HUBBUB_JWT_PUBLIC_KEY": "".join(s.pem() for s in SIGNERS.values()),
        "HUBBUB_JWT_AUDIENCE": AUDIENCE,
    }
    yield from _start(Server(tmp_path_factory.mktemp("own-pem-text"), auth="jwt", env=env))


@pytest.fixture(scope="module")
def jwks_server(
    tmp_path_factory: pytest.TempPathFactory, key_files: dict[str, Path]
) -> Iterator[Server]:
    """A JWKS file given by flag, no audience configured."""
    args = ["--jwt-public-key", str(key_files["jwks"])]
    yield from _start(Server(tmp_path_factory.mktemp("own-jwks"), auth="jwt", env=FAST, args=args))


@pytest.fixture(scope="module")
def pem_file_server(
    tmp_path_factory: pytest.TempPathFactory, key_files: dict[str, Path]
) -> Iterator[Server]:
    env = {**FAST, "HUBBUB_JWT_PUBLIC_KEY": str(key_files["pem"])}
    yield from _start(Server(tmp_path_factory.mktemp("own-pem-file"), auth="jwt", env=env))


@pytest.fixture(params=["pem_text_server", "jwks_server", "pem_file_server"])
def own_server(request: pytest.FixtureRequest) -> Server:
    server: Server = request.getfixturevalue(request.param)
    return server


async def me(server: Server, token: str) -> httpx.Response:
    async with client(server.url) as http:
        return await http.get("/auth/me", headers=bearer(token))


# --- accepted ---------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
async def test_token_of_each_algorithm_is_the_user_it_names(own_server: Server, alg: str) -> None:
    sub = new_sub()
    r = await me(own_server, SIGNERS[alg].token(sub, name=f"Ada {alg}"))
    assert r.status_code == 200, r.text
    assert r.json() == {"id": sub, "username": f"Ada {alg}"}
    # without a name the user id is the username; without a kid each key of the kind is tried
    sub2 = new_sub()
    r = await me(own_server, SIGNERS[alg].token(sub2, with_kid=False))
    assert r.status_code == 200, r.text
    assert r.json() == {"id": sub2, "username": sub2}


@pytest.mark.parametrize("alg", ALGS)
async def test_send_stream_and_ticket_with_an_own_token(jwks_server: Server, alg: str) -> None:
    sub = new_sub()
    token = SIGNERS[alg].token(sub, name=f"Streamer {alg}")
    async with client(jwks_server.url) as http:
        r = await http.post(
            "/chat/rooms", headers=bearer(token), json={"name": f"r-{sub}", "visibility": "public"}
        )
        assert r.status_code == 201, r.text
        room = r.json()["id"]
        r = await http.post("/auth/ticket", headers=bearer(token))
        assert r.status_code == 200, r.text
        ticket = r.json()["ticket"]
        async with (
            open_stream(http, "/chat/events", headers=bearer(token)) as with_header,
            open_stream(http, "/chat/events", params={"ticket": ticket}) as with_ticket,
        ):
            assert with_header.status == 200 and with_ticket.status == 200
            r = await http.post(
                "/chat/messages",
                headers=bearer(token),
                json={"room_id": room, "message": "hello from my own auth"},
            )
            assert r.status_code == 201, r.text
            sent = r.json()["message"]
            assert (sent["user_id"], sent["username"]) == (sub, f"Streamer {alg}")
            for stream in (with_header, with_ticket):
                [got] = await stream.wait_messages(1)
                assert got["id"] == sent["id"] and got["text"] == "hello from my own auth"
        # the ticket was one-time
        r = await http.get("/chat/events", params={"ticket": ticket})
        assert_error(r, 401, "invalid_ticket")
        r = await http.get(f"/chat/room/{room}/history", headers=bearer(token))
        assert r.status_code == 200 and [m["text"] for m in r.json()] == ["hello from my own auth"]


async def test_websocket_with_a_ticket_from_an_own_token(jwks_server: Server) -> None:
    sub = new_sub()
    token = SIGNERS["ES256"].token(sub, name="Socket User")
    async with client(jwks_server.url) as http:
        r = await http.post(
            "/chat/rooms", headers=bearer(token), json={"name": f"w-{sub}", "visibility": "public"}
        )
        room = r.json()["id"]
        ticket = (await http.post("/auth/ticket", headers=bearer(token))).json()["ticket"]
    url = jwks_server.url.replace("http://", "ws://") + f"/chat/ws?ticket={ticket}"
    async with connect(url, open_timeout=10, ping_interval=None) as ws:
        await ws.send(json.dumps({"op": "send", "room_id": room, "message": "via ws", "ref": 7}))
        async with asyncio.timeout(10):
            while (frame := json.loads(await ws.recv()))["event"] != "ack":
                pass
    assert frame["ref"] == 7
    assert (frame["data"]["user_id"], frame["data"]["username"]) == (sub, "Socket User")


async def test_ten_concurrent_first_requests_make_one_user(jwks_server: Server) -> None:
    sub = new_sub()
    tokens = [SIGNERS[ALGS[i % 3]].token(sub, name="Grace", jti=str(i)) for i in range(10)]
    async with client(jwks_server.url) as http:
        answers = await asyncio.gather(*(http.get("/auth/me", headers=bearer(t)) for t in tokens))
        assert [r.status_code for r in answers] == [200] * 10, [r.text for r in answers]
        assert {(r.json()["id"], r.json()["username"]) for r in answers} == {(sub, "Grace")}
        # the one user, seen by others: a member list names them once
        r = await http.post(
            "/chat/rooms",
            headers=bearer(tokens[0]),
            json={"name": f"g-{sub}", "visibility": "public"},
        )
        room = r.json()["id"]
        r = await http.get(f"/chat/room/{room}/members", headers=bearer(tokens[1]))
        assert r.status_code == 200, r.text
        assert [(m["user_id"], m["username"]) for m in r.json()["members"]] == [(sub, "Grace")]


async def test_a_taken_name_is_not_taken_over_and_names_follow_the_token(
    pem_text_server: Server,
) -> None:
    rs = SIGNERS["RS256"]
    first, second = new_sub(), new_sub()
    name = f"Lin {uuid.uuid4().hex[:6]}"
    assert (await me(pem_text_server, rs.token(first, name=name))).json()["username"] == name
    # someone else claiming the same name gets it with their id beside it, every time
    for _ in range(2):
        r = await me(pem_text_server, rs.token(second, name=name, jti=uuid.uuid4().hex))
        assert r.json() == {"id": second, "username": f"{name} ({second})"}
    # a registered account's name (any case) is not taken either
    account = await signup(pem_text_server, "owned")
    r = await me(pem_text_server, rs.token(new_sub(), name=account.username.upper()))
    assert r.json()["username"].startswith(f"{account.username.upper()} (")
    # the identity service renames: the next token's name is the username
    r = await me(pem_text_server, rs.token(first, name=name + " Renamed"))
    assert r.json() == {"id": first, "username": name + " Renamed"}
    # a token without a name keeps it; a name that cannot be shown is ignored
    r = await me(pem_text_server, rs.token(first))
    assert r.json()["username"] == name + " Renamed"
    r = await me(pem_text_server, rs.token(first, name="\u202eevil"))
    assert r.json()["username"] == name + " Renamed"


async def test_hubbub_tokens_keep_working_beside_own_tokens(pem_text_server: Server) -> None:
    account = await signup(pem_text_server, "native")
    async with client(pem_text_server.url) as http:
        r = await http.get("/auth/me", headers=account.auth)
        assert r.status_code == 200 and r.json()["id"] == account.id
        r = await http.post("/auth/logout", headers=account.auth)
        assert r.status_code == 200, r.text
        r = await http.get("/auth/me", headers=account.auth)
        assert_error(r, 401, "session_ended")


async def test_expiry_is_honoured_after_the_token_was_accepted(jwks_server: Server) -> None:
    token = SIGNERS["EdDSA"].token(new_sub(), ttl=2)
    assert (await me(jwks_server, token)).status_code == 200  # now known to the server
    await asyncio.sleep(2.6)
    assert_error(await me(jwks_server, token), 401, "token_expired")


# --- refused ----------------------------------------------------------------------------------


def _now_claims(**extra: Any) -> dict[str, Any]:
    return {"sub": new_sub(), "exp": int(time.time()) + 300, "aud": AUDIENCE, **extra}


@pytest.mark.parametrize("alg", ALGS)
async def test_bad_own_tokens_are_401(pem_text_server: Server, alg: str) -> None:
    s = SIGNERS[alg]
    cases = {
        "wrong aud": s.token(new_sub(), aud="someone-else"),
        "no aud (an audience is configured)": s.token(new_sub(), aud=None),
        "no exp": jwt.encode({"sub": new_sub(), "aud": AUDIENCE}, s.private, algorithm=alg),
        "no sub": jwt.encode(
            {"exp": int(time.time()) + 60, "aud": AUDIENCE}, s.private, algorithm=alg
        ),
        "sub not a user id": s.token("auth0|1234"),
        "forged (another key, same kid)": OTHERS[alg].token(new_sub()),
        "not yet valid": s.token(new_sub(), nbf=int(time.time()) + 600),
    }
    async with client(pem_text_server.url) as http:
        for why, token in cases.items():
            r = await http.get("/auth/me", headers=bearer(token))
            assert r.status_code == 401, (why, r.status_code, r.text)
            assert_error(r, 401, "invalid_token")
        r = await http.get("/auth/me", headers=bearer(s.token(new_sub(), ttl=-5)))
        assert_error(r, 401, "token_expired")
        # tampering with the claims of a good token breaks its signature
        head, _, sig = s.token(new_sub()).split(".")
        forged = f"{head}.{b64(json.dumps(_now_claims(sub='admin')).encode())}.{sig}"
        assert_error(await http.get("/auth/me", headers=bearer(forged)), 401, "invalid_token")
        # an own token is a Bearer token, not the session cookie
    async with client(pem_text_server.url, cookies={"hubbub_session": s.token(new_sub())}) as c:
        assert_error(await c.get("/auth/me"), 401, "invalid_token")


async def test_algorithm_confusion_and_none_are_refused(pem_text_server: Server) -> None:
    rsa_pem = SIGNERS["RS256"].pem()
    cases = {
        # HS256 "signed" with the configured public key's PEM text as the HMAC secret
        "hs256 with the public key": hmac_token(
            {"alg": "HS256", "typ": "JWT"}, _now_claims(), rsa_pem.encode()
        ),
        "hs256 with the public key, kid": hmac_token(
            {"alg": "HS256", "kid": "rsa-1"}, _now_claims(), rsa_pem.encode()
        ),
        # an RS256 header over an HMAC made with the server's own secret
        "rs256 header, server secret": hmac_token({"alg": "RS256"}, _now_claims(), SECRET.encode()),
        "none": b64(b'{"alg":"none","typ":"JWT"}')
        + "."
        + b64(json.dumps(_now_claims()).encode())
        + ".",
        "None": b64(b'{"alg":"None"}') + "." + b64(json.dumps(_now_claims()).encode()) + ".",
        # an Ed25519 signature presented as ES256 and RS256
        "eddsa as es256": _relabel(SIGNERS["EdDSA"].token(new_sub()), "ES256"),
        "es256 as rs256": _relabel(SIGNERS["ES256"].token(new_sub()), "RS256"),
        "hs512": jwt.encode(_now_claims(), SECRET * 2, algorithm="HS512"),
        "not a jwt": "not.a.jwt",
    }
    async with client(pem_text_server.url) as http:
        for why, token in cases.items():
            r = await http.get("/auth/me", headers=bearer(token))
            assert r.status_code == 401, (why, r.status_code, r.text)
            assert_error(r, 401, "invalid_token")


def _relabel(token: str, alg: str) -> str:
    head, claims, sig = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return f"{b64(json.dumps({**header, 'alg': alg}).encode())}.{claims}.{sig}"


async def test_unknown_kid_is_refused(jwks_server: Server) -> None:
    for alg, s in SIGNERS.items():
        r = await me(jwks_server, s.token(new_sub(), kid="nobody-has-this"))
        assert_error(r, 401, "invalid_token")
        # a known kid of another key type does not lend its key
        other = next(o for o in SIGNERS.values() if o.alg != alg)
        r = await me(jwks_server, s.token(new_sub(), kid=other.kid))
        assert_error(r, 401, "invalid_token")


async def test_own_tokens_mean_nothing_without_the_flag(jwt_server: Server) -> None:
    for s in SIGNERS.values():
        assert_error(await me(jwt_server, s.token(new_sub())), 401, "invalid_token")


# --- several servers, one database ------------------------------------------------------------


async def test_first_sight_on_two_servers_sharing_postgres(
    tmp_path: Path, key_files: dict[str, Path]
) -> None:
    url = create_pg_database()
    env = {**FAST, "HUBBUB_DATABASE": url, "HUBBUB_JWT_PUBLIC_KEY": str(key_files["jwks"])}
    servers = [Server(tmp_path / f"n{i}", auth="jwt", env=env) for i in range(2)]
    try:
        for server in servers:
            server.start()
        for name in ("Shared Name", "Shared Name"):  # the second round: the name is taken
            sub = new_sub()
            tokens = [SIGNERS["ES256"].token(sub, name=name, jti=str(i)) for i in range(10)]
            answers = await asyncio.gather(*(me(servers[i % 2], t) for i, t in enumerate(tokens)))
            assert [r.status_code for r in answers] == [200] * 10, [r.text for r in answers]
            assert len({r.json()["username"] for r in answers}) == 1
            assert {r.json()["id"] for r in answers} == {sub}
    finally:
        for server in servers:
            if server.proc is not None:
                server.stop()
        drop_pg_database(url)


# --- bad configuration ------------------------------------------------------------------------


def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "hubbub", "serve", "--port", "1", "--data-dir", str(tmp_path)]
    run = subprocess.run(
        [*cmd, *args],
        env={**os.environ, "HUBBUB_SECRET": SECRET, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return run.returncode, run.stdout + run.stderr


def test_serve_refuses_unusable_keys(tmp_path: Path) -> None:
    private_pem = (
        SIGNERS["ES256"]
        .private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    enc_only = tmp_path / "enc.json"
    enc_only.write_text(json.dumps({"keys": [{**SIGNERS["RS256"].jwk(), "use": "enc"}]}))
    weak = tmp_path / "weak.pem"
    weak.write_text(
        rsa.generate_private_key(65537, 1024)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    cases = {
        "garbage": (["--jwt-public-key", "garbage"], {}, "no file at 'garbage'"),
        "private key": (["--jwt-public-key", private_pem], {}, "private key"),
        "broken PEM": (
            [],
            {"HUBBUB_JWT_PUBLIC_KEY": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"},
            "cannot be read",
        ),
        "JWKS without a signing key": (["--jwt-public-key", str(enc_only)], {}, "no usable key"),
        "RSA 1024": (["--jwt-public-key", str(weak)], {}, "too weak"),
    }
    for why, (args, env, said) in cases.items():
        code, out = _serve(tmp_path, *args, env=env)
        assert code == 2, (why, code, out)
        assert said in out and "Traceback" not in out, (why, out)
        assert "BEGIN PRIVATE KEY" not in out and "MIG" not in out, (why, out)  # no key echoed
