"""JWTs with one fixed algorithm (HS256) and opaque random tokens stored only as hashes.

``jwt.decode`` is always given ``algorithms=["HS256"]`` and required claims, so ``alg: none``
and algorithm confusion (an RS256 public key used as an HMAC secret) are rejected outright.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any, Literal

import jwt
from jwt.algorithms import HMACAlgorithm

from hubbub.errors import Unauthenticated

ALGORITHM = "HS256"
_VERIFIED_MAX = 10_000
TokenType = Literal["access", "session"]


def random_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class _PreparedHMAC(HMACAlgorithm):
    """HS256 whose key check (PyJWT looks for PEM and SSH key shapes with regular
    expressions, on every token) runs once: the key is this process's one secret. Half of a
    token check's cost in a connect storm."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)
        self._prepared: tuple[str | bytes, bytes] | None = None

    def prepare_key(self, key: str | bytes) -> bytes:
        prepared = self._prepared
        if prepared is not None and prepared[0] == key:
            return prepared[1]
        out = super().prepare_key(key)
        self._prepared = (key, out)
        return out


class TokenSigner:
    def __init__(self, secret: str) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes (RFC 7518 §3.2)")
        self._secret = secret
        # Tokens whose signature and claims checked out, by their text: a client opening many
        # streams (tabs, rooms, reconnects) presents the same token again and again. Only
        # ``exp`` changes its answer over time, and it is checked again on every use.
        self._verified: dict[str, dict[str, Any]] = {}
        self._jwt = jwt.PyJWT()
        self._jwt._jws.unregister_algorithm(ALGORITHM)
        self._jwt._jws.register_algorithm(ALGORITHM, _PreparedHMAC())

    def issue(self, user_id: str, session_id: str, typ: TokenType, ttl: float) -> str:
        now = int(time.time())
        claims = {"sub": user_id, "sid": session_id, "typ": typ, "iat": now, "exp": now + int(ttl)}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str, typ: TokenType) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is not None:
            if claims["exp"] <= time.time():
                del self._verified[token]
                raise Unauthenticated("the token has expired", code="token_expired")
            if claims.get("typ", typ) != typ:
                raise Unauthenticated("the token is not valid", code="invalid_token")
            return claims
        claims = self._decode(token, typ)
        if isinstance(claims["exp"], int | float):
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    def _decode(self, token: str, typ: TokenType) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = self._jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": ["sub", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", code="token_expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not valid", code="invalid_token") from None
        if not isinstance(claims.get("sub"), str) or claims.get("typ", typ) != typ:
            raise Unauthenticated("the token is not valid", code="invalid_token")
        return claims
