"""JWTs and opaque random tokens stored only as hashes: the one place a token is checked.

Hubbub's own tokens are HS256 with the server's secret. With ``--jwt-public-key``, access tokens
signed by the application's identity service (RS256, ES256, EdDSA) are taken too. Which check
a token gets is decided by its header's ``alg``, and each check is then given exactly one
algorithm: HS256 with the secret, or the algorithm a configured key's type allows, with that
key. So ``alg: none`` is refused, an RS256 token is never checked with the secret, and an HS256
token "signed" with a public key's PEM text is checked with the secret, and fails.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Any, Literal

import jwt
from jwt.algorithms import HMACAlgorithm

from hubbub.auth.external_keys import ALGORITHMS, PublicKeys
from hubbub.errors import Unauthenticated

ALGORITHM = "HS256"
EXTERNAL = "hubbub:external"
"""Set (True) in the claims :meth:`TokenSigner.verify` returns for a token of the application's
identity service; those claims are rebuilt from the checked token, so a token cannot set it."""
USER_ID_RE = re.compile(r"[A-Za-z0-9_.@:~-]{1,64}")
"""What a user id may be (``auth/identity.py`` re-exports it): an external token's ``sub`` too."""
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
    def __init__(
        self,
        secret: str,
        external_keys: PublicKeys | None = None,
        audience: str | None = None,
    ) -> None:
        """``external_keys``: the identity service's keys (``--jwt-public-key``); ``audience``:
        the ``aud`` its tokens must carry (``--jwt-audience``), unchecked when None."""
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes (RFC 7518 §3.2)")
        self._secret = secret
        self._external = external_keys
        self._audience = audience
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
        external = self._external
        if external is not None and (header := _header(token)).get("alg") != ALGORITHM:
            claims = self._decode_external(token, header, typ, external)
        else:
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

    def _decode_external(
        self, token: str, header: dict[str, Any], typ: TokenType, keys: PublicKeys
    ) -> dict[str, Any]:
        """A token of the identity service: checked against the configured keys its header's
        ``alg`` and ``kid`` select, each with its own single algorithm. Only as an access
        token (a Bearer token), never as Hubbub's session cookie. The claims Hubbub uses are
        returned, rebuilt: ``sid`` and ``typ`` of another issuer mean nothing here."""
        alg, kid = header.get("alg"), header.get("kid")
        if typ != "access" or alg not in ALGORITHMS:
            raise Unauthenticated("the token is not valid", code="invalid_token")
        for key in keys.candidates(str(alg), kid if isinstance(kid, str) else None):
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key.key,
                    algorithms=[key.algorithm],
                    audience=self._audience,
                    options={"require": ["sub", "exp"], "verify_aud": self._audience is not None},
                )
            except jwt.InvalidSignatureError:
                continue  # another key of the same kind may have signed it
            except jwt.ExpiredSignatureError:
                raise Unauthenticated("the token has expired", code="token_expired") from None
            except jwt.MissingRequiredClaimError as exc:
                raise Unauthenticated(
                    f"the token has no {exc.claim!r} claim", code="invalid_token"
                ) from None
            except (jwt.InvalidAudienceError, jwt.InvalidIssuedAtError) as exc:
                raise Unauthenticated(f"the token is not valid: {exc}", code="invalid_token") from (
                    None
                )
            except jwt.PyJWTError:
                raise Unauthenticated("the token is not valid", code="invalid_token") from None
            return _external_claims(claims)
        raise Unauthenticated(
            "the token is not signed by a key this server knows", code="invalid_token"
        )


def _header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("the token is not valid", code="invalid_token") from None


def _external_claims(claims: dict[str, Any]) -> dict[str, Any]:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not USER_ID_RE.fullmatch(sub):
        raise Unauthenticated(
            "the token's 'sub' must be a user id of 1-64 letters, digits and _.@:~-",
            code="invalid_token",
        )
    out: dict[str, Any] = {"sub": sub, "exp": int(claims["exp"]), "typ": "access", EXTERNAL: True}
    if isinstance(claims.get("name"), str):
        out["name"] = claims["name"]
    return out
