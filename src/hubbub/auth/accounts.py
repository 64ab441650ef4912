"""Accounts and sessions: register, login, refresh (rotating), logout, one-time tickets,
password change — the rules, with HTTP (bodies, cookies, status codes) left to ``api/auth.py``.

Every revocation ends the session everywhere at once: the store marks it revoked, this
process's authenticator stops honouring it, and ``Publisher.sessions_ended`` closes the
streams opened with it on every node.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hubbub.auth.identity import Authenticator, Identity
from hubbub.auth.names import username_key
from hubbub.auth.passwords import hash_password, password_weakness, verify_password
from hubbub.auth.tokens import TokenSigner, random_token, token_hash
from hubbub.chat.publish import Publisher
from hubbub.errors import Conflict, Forbidden, Invalid, Unauthenticated
from hubbub.models import User
from hubbub.store.base import SessionRecord, Store

if TYPE_CHECKING:  # the limiter's module imports Redis; the rules only call it
    from hubbub.ratelimit import FailureLimiter


@dataclass(slots=True)
class Issued:
    """The tokens of a session just opened or refreshed."""

    user: User
    access_token: str
    access_ttl: int
    refresh_token: str
    refresh_ttl: int
    session_token: str
    """The session cookie's value."""
    session_ttl: int
    """What is left of the session: the session cookie's ``Max-Age``."""


async def create_account(store: Store, username: str, password: str) -> User:
    """The one way an account comes to be (``POST /auth/register`` and ``hubbub user create``):
    two creations racing for one name make one account, and the other is 409."""
    weakness = password_weakness(password, username)
    if weakness is not None:
        raise Invalid(weakness, code="weak_password")
    taken = Conflict(f"username {username!r} is taken", code="username_taken")
    if await store.accounts.user_by_name(username) is not None:
        raise taken
    try:
        user = await store.accounts.create_user(username, await hash_password(password))
    except Exception as exc:  # the unique index lost a race with a concurrent register
        if await store.accounts.user_by_name(username) is not None:
            raise taken from exc
        raise
    return user


class Accounts:
    def __init__(
        self,
        store: Store,
        auth: Authenticator,
        signer: TokenSigner,
        publisher: Publisher,
        sign_ins: FailureLimiter,
        *,
        session_ttl: int,
        access_token_ttl: int,
        refresh_token_ttl: int,
        ticket_ttl: int,
    ) -> None:
        self.store = store
        self.auth = auth
        self.signer = signer
        self.publisher = publisher
        self.sign_ins = sign_ins
        self.session_ttl = session_ttl
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.ticket_ttl = ticket_ttl

    async def register(self, username: str, password: str, address: str | None) -> User:
        """A taken name counts as a failed attempt (429 after too many), so names cannot be
        enumerated at speed."""
        async with self.sign_ins.attempt(username_key(username), address) as attempt:
            try:
                user = await create_account(self.store, username, password)
            except Conflict:
                attempt.failed()
                raise
        self.auth.forget_user(user.username)  # a trust-mode name may now be this account
        return user

    async def login(self, username: str, password: str, address: str | None) -> Issued:
        """After too many failures for a username or from an address: 429, before any password
        is checked. An unknown name costs a hash too, so it cannot be told from a wrong one."""
        async with self.sign_ins.attempt(username_key(username), address) as attempt:
            found = await self.store.accounts.user_by_name(username)
            if not await verify_password(found[1] if found else None, password) or found is None:
                attempt.failed()
                raise Unauthenticated("wrong username or password", code="invalid_credentials")
        session = await self.store.accounts.create_session(found[0].id, self.session_ttl)
        return await self._issue(found[0], session)

    async def refresh(self, token: str | None) -> Issued:
        """Rotate: a refresh token is single-use. Presenting a used one means it was copied,
        so the session it belongs to is ended for everyone holding it."""
        if not token:
            raise Unauthenticated(
                "give refresh_token (or send the refresh cookie)", code="invalid_refresh_token"
            )
        used = await self.store.accounts.use_refresh_token(token_hash(token))
        if used is None:
            raise Unauthenticated(
                "the refresh token is unknown or expired", code="invalid_refresh_token"
            )
        state, session = used
        if state == "reused":
            await self.store.accounts.revoke_session(session.id)
            await self.end_sessions(session.user_id, [session.id])
            raise Unauthenticated(
                "the refresh token was already used; the session is ended",
                code="refresh_token_reused",
            )
        if session.revoked or session.expires_at < time.time():
            raise Unauthenticated("the session has ended; sign in again", code="session_ended")
        user = await self.store.accounts.user_by_id(session.user_id)
        if user is None:
            raise Unauthenticated("the user no longer exists", code="invalid_refresh_token")
        return await self._issue(user, session)

    async def logout(
        self, token: str | None, caller: Callable[[], Awaitable[Identity | None]]
    ) -> None:
        """End the session the refresh token belongs to, else the caller's own (asked for only
        then: without a token, the caller's credentials name the session)."""
        session: tuple[str, str] | None = None  # (user id, session id)
        if token:
            used = await self.store.accounts.use_refresh_token(token_hash(token))
            session = (used[1].user_id, used[1].id) if used else None
        if session is None:
            who = await caller()
            if who is not None and who.session_id is not None:
                session = (who.user_id, who.session_id)
        if session is None:
            raise Unauthenticated("no session to end", code="not_authenticated")
        user_id, session_id = session
        await self.store.accounts.revoke_session(session_id)
        await self.end_sessions(user_id, [session_id])

    async def ticket(self, who: Identity) -> str:
        """A one-time ticket, dying with the session that asked for it."""
        value = random_token()
        await self.store.accounts.add_ticket(
            token_hash(value), who.user_id, who.session_id, self.ticket_ttl
        )
        return value

    async def change_password(self, who: Identity, old_password: str, new_password: str) -> None:
        """Whoever knew the old password may hold other sessions: all of them but the one
        making the change are revoked, and their streams end."""
        stored = await self.store.accounts.password_hash(who.user_id)
        if not await verify_password(stored, old_password):
            raise Forbidden("the old password is wrong", code="wrong_password")
        weakness = password_weakness(new_password, who.username)
        if weakness is not None:
            raise Invalid(weakness, code="weak_password")
        ended = await self.store.accounts.set_password(
            who.user_id, await hash_password(new_password), keep=who.session_id
        )
        await self.end_sessions(who.user_id, ended)

    async def end_sessions(self, user_id: str, session_ids: list[str]) -> None:
        """The sessions are revoked in the store: stop honouring them here at once, and end every
        stream opened with them, on every node."""
        if not session_ids:
            return
        self.auth.forget_sessions(session_ids)
        await self.publisher.sessions_ended(user_id, session_ids)

    async def _issue(self, user: User, session: SessionRecord) -> Issued:
        refresh = random_token()
        await self.store.accounts.add_refresh_token(
            token_hash(refresh), session.id, self.refresh_token_ttl
        )
        access = self.signer.issue(user.id, session.id, "access", self.access_token_ttl)
        session_ttl = int(max(0, session.expires_at - time.time()))
        return Issued(
            user=user,
            access_token=access,
            access_ttl=self.access_token_ttl,
            refresh_token=refresh,
            refresh_ttl=self.refresh_token_ttl,
            session_token=self.signer.issue(user.id, session.id, "session", session_ttl),
            session_ttl=session_ttl,
        )
