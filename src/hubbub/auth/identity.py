"""Who is calling: one resolver for every route and transport, in ``jwt`` or ``trust`` mode.

``jwt``: a Bearer access token, else a one-time ``?ticket=`` (only on the GETs that open a
stream, which pass ``allow_ticket=True``; anywhere else a ticket is 401), else the HttpOnly session
cookie. A ticket carries the session that asked for it, and dies with it. A Bearer token may
also be one the application's identity service signed (``--jwt-public-key``): it has no
Hubbub session (nothing to revoke here; it lasts until its ``exp``, and so do tickets it asks
for), and its user is created on first sight (``auth/external_users.py``). Any ``user_id`` the
request names (seed query parameter, body field, ``User-ID`` header) must be the caller (by id or
username), so nobody can speak or listen as someone else.

``trust`` (local development): the ``User-ID`` header, else ``user_id`` in the query or body, else
the session cookie, else a guest identity created on first sight and set as ``hubbub_guest``.
Users come into being on first use; a name that is a registered account's id or username acts as
that account.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from hubbub.auth.external_users import ExternalUsers
from hubbub.auth.tokens import EXTERNAL, TokenSigner, token_hash
from hubbub.auth.tokens import USER_ID_RE as USER_ID_RE  # re-exported: what a user id is
from hubbub.batch import TickBatch
from hubbub.errors import BadRequest, Forbidden, Unauthenticated
from hubbub.store.base import SessionRecord, Store

SESSION_COOKIE = "hubbub_session"
GUEST_COOKIE = "hubbub_guest"
SESSION_CACHE_SECONDS = 5.0
# How long "no account has this id or username" is believed (trust mode). Short: the first
# send creates the row, after which the name resolves for good.
UNKNOWN_USER_SECONDS = 5.0
_CACHE_MAX = 100_000


@dataclass(slots=True)
class Credentials:
    """The parts of a request that can carry identity."""

    authorization: str | None = None
    cookies: Mapping[str, str] = field(default_factory=dict)
    ticket: str | None = None
    header_user_id: str | None = None
    query_user_id: str | None = None
    body_user_id: str | None = None
    secure: bool = False


@dataclass(slots=True)
class Identity:
    user_id: str
    username: str
    session_id: str | None = None
    set_cookie: str | None = None


def cookie_header(name: str, value: str, *, max_age: int, secure: bool, path: str = "/") -> str:
    parts = [f"{name}={value}", f"Path={path}", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


class Authenticator:
    def __init__(
        self,
        mode: str,
        store: Store,
        signer: TokenSigner,
        *,
        session_ttl: int,
        cookie_secure: bool | None = None,
    ) -> None:
        self.mode = mode
        self._store = store
        self._signer = signer
        self._session_ttl = session_ttl
        self._cookie_secure = cookie_secure
        self._sessions: dict[str, tuple[float, SessionRecord | None]] = {}
        self._ended: set[str] = set()  # sessions revoked through this process
        self._usernames: dict[str, str] = {}
        self._external = ExternalUsers(store)
        # trust mode: a claimed name -> (user id, username) of the row it stands for
        self._known_users: dict[str, tuple[str, str]] = {}
        self._unknown_users: dict[str, float] = {}
        # A connect storm's lookups, one store round trip per batch (``hubbub.batch``).
        lookups = store.lookups
        self._session_reads: TickBatch[str, SessionRecord] = TickBatch(lookups.sessions)
        self._username_reads: TickBatch[str, str] = TickBatch(lookups.usernames)
        self._account_reads: TickBatch[str, tuple[str, str]] = TickBatch(lookups.accounts_named)

    def secure_cookie(self, request_is_https: bool) -> bool:
        return request_is_https if self._cookie_secure is None else self._cookie_secure

    async def identify(
        self, creds: Credentials, *, ensure_user: bool = True, allow_ticket: bool = False
    ) -> Identity:
        """``ensure_user=False``: the caller's own write creates a trust-mode user row in its
        transaction (the hot routes do), saving a commit per new user; the identity returned is
        still the existing account's when the name is one.

        ``allow_ticket=True``: only for the ``GET`` that opens a stream (``/chat/events``,
        ``/chat/room/{id}/events``, ``/chat/ws``, ``…/poll``); everywhere else a ``?ticket=``
        authenticates nothing (401)."""
        if self.mode == "trust":
            return await self._trust(creds, ensure_user)
        ident = await self._jwt(creds, allow_ticket)
        for claimed in (creds.header_user_id, creds.query_user_id, creds.body_user_id):
            if claimed and claimed not in (ident.user_id, ident.username):
                raise Forbidden(
                    "user_id names someone other than the signed-in user", code="user_mismatch"
                )
        return ident

    # jwt ---------------------------------------------------------------------------------

    async def _jwt(self, creds: Credentials, allow_ticket: bool) -> Identity:
        if creds.authorization is not None:
            scheme, _, token = creds.authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated(
                    "Authorization must be 'Bearer <access token>'", code="invalid_token"
                )
            return await self._from_claims(self._signer.verify(token.strip(), "access"))
        cookie = creds.cookies.get(SESSION_COOKIE)
        if creds.ticket is not None:
            if allow_ticket:
                return await self._from_ticket(creds.ticket)
            if not cookie:
                raise Unauthenticated(
                    "a ticket only opens a stream (GET /chat/events, /chat/room/{id}/events, "
                    "/chat/ws, /chat/room/{id}/poll); send a Bearer token or the session cookie",
                    code="ticket_not_accepted",
                )
        if cookie:
            return await self._from_claims(self._signer.verify(cookie, "session"))
        raise Unauthenticated(
            "sign in: send a Bearer token, the session cookie or a ticket",
            code="not_authenticated",
        )

    async def _from_ticket(self, ticket: str) -> Identity:
        used = await self._store.accounts.consume_ticket(token_hash(ticket))
        if used is None or (used[1] is not None and used[1] in self._ended):
            raise Unauthenticated(
                "the ticket is unknown, expired or already used, or its session has ended",
                code="invalid_ticket",
            )
        user_id, session_id = used
        return Identity(user_id, await self._username(user_id), session_id)

    async def _from_claims(self, claims: Mapping[str, object]) -> Identity:
        user_id = str(claims["sub"])
        if claims.get(EXTERNAL) is True:
            username = await self._external.username(user_id, claims.get("name"))
            if self._usernames.get(user_id) != username:  # tickets name the user from here
                self._remember_username(user_id, username)
            return Identity(user_id, username)
        sid = claims.get("sid")
        if isinstance(sid, str):
            record = await self.session(sid)
            if record is None or record.revoked or record.expires_at < time.time():
                raise Unauthenticated("the session has ended; sign in again", code="session_ended")
        return Identity(
            user_id, await self._username(user_id), sid if isinstance(sid, str) else None
        )

    async def session(self, session_id: str) -> SessionRecord | None:
        """The session, cached for a few seconds; one revoked through this process reads as
        revoked at once (also when a lookup that started before the revocation lands after
        it)."""
        now = time.monotonic()
        cached = self._sessions.get(session_id)
        if cached is not None and cached[0] > now:
            record = cached[1]
        else:
            record = await self._session_reads.get(session_id)
            if len(self._sessions) > _CACHE_MAX:
                self._sessions.clear()
            self._sessions[session_id] = (now + SESSION_CACHE_SECONDS, record)
        if record is not None and not record.revoked and session_id in self._ended:
            record = msgspec.structs.replace(record, revoked=True)
        return record

    def forget_session(self, session_id: str) -> None:
        """The session was revoked: stop honouring it here at once (its tokens, cookie and
        tickets). Call on every process that learns of the revocation."""
        self._sessions.pop(session_id, None)
        if len(self._ended) > _CACHE_MAX:
            self._ended.clear()  # the store still says revoked; only the cache window returns
        self._ended.add(session_id)

    def forget_sessions(self, session_ids: list[str]) -> None:
        for session_id in session_ids:
            self.forget_session(session_id)

    def forget_user(self, name: str) -> None:
        """``name`` may now be an account (it was just registered): resolve it afresh."""
        self._known_users.pop(name, None)
        self._unknown_users.pop(name, None)
        self._external.forget(name)

    async def _username(self, user_id: str) -> str:
        name = self._usernames.get(user_id)
        if name is None:
            name = await self._username_reads.get(user_id)
            if name is None:
                raise Unauthenticated("the user no longer exists", code="invalid_token")
            self._remember_username(user_id, name)
        return name

    def _remember_username(self, user_id: str, name: str) -> None:
        if len(self._usernames) > _CACHE_MAX:
            self._usernames.clear()
        self._usernames[user_id] = name

    # trust -------------------------------------------------------------------------------

    async def _trust(self, creds: Credentials, ensure: bool) -> Identity:
        for claimed in (creds.header_user_id, creds.query_user_id, creds.body_user_id):
            if claimed:
                return await self._trusted(claimed, ensure)
        cookie = creds.cookies.get(SESSION_COOKIE)
        if cookie:
            try:
                return await self._from_claims(self._signer.verify(cookie, "session"))
            except Unauthenticated:
                pass
        guest = creds.cookies.get(GUEST_COOKIE)
        if guest and USER_ID_RE.fullmatch(guest):
            return await self._trusted(guest, ensure)
        ident = await self._trusted("guest-" + secrets.token_hex(6), ensure)
        ident.set_cookie = cookie_header(
            GUEST_COOKIE,
            ident.user_id,
            max_age=self._session_ttl,
            secure=self.secure_cookie(creds.secure),
        )
        return ident

    async def _trusted(self, claimed: str, ensure: bool) -> Identity:
        """The user ``claimed`` names: an existing row by id, else an account by username (so a
        jwt-mode account keeps its id and name), else a new trust-mode user ``claimed``."""
        if not USER_ID_RE.fullmatch(claimed):
            raise BadRequest(
                "user_id must be 1-64 characters of letters, digits and _.@:~-",
                code="invalid_user_id",
            )
        known = self._known_users.get(claimed)
        if known is not None:
            return Identity(*known)
        now = time.monotonic()
        if not ensure and self._unknown_users.get(claimed, 0.0) > now:
            return Identity(claimed, claimed)
        found = await self._account(claimed)
        if found is None and ensure:
            await self._store.accounts.ensure_user(claimed)
            # Looked up again: a same-named account registered meanwhile wins the name.
            found = await self._account(claimed)
        if found is None:
            if len(self._unknown_users) > _CACHE_MAX:
                self._unknown_users.clear()
            self._unknown_users[claimed] = now + UNKNOWN_USER_SECONDS
            return Identity(claimed, claimed)
        self._unknown_users.pop(claimed, None)
        if len(self._known_users) > _CACHE_MAX:
            self._known_users.clear()
        self._known_users[claimed] = found
        return Identity(*found)

    async def _account(self, name: str) -> tuple[str, str] | None:
        return await self._account_reads.get(name)
