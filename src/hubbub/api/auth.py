"""Accounts and sessions: register, login, refresh (rotating), logout, one-time tickets,
password change.

Every revocation ends the session everywhere at once: the store marks it revoked, this
process's authenticator stops honouring it, and ``ChatService.sessions_ended`` closes the streams
opened with it on every node."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hubbub.api.common import Caller, Rt, current_identity, respond
from hubbub.api.schemas import (
    Credentials,
    PasswordChangeIn,
    RefreshIn,
    Register,
    errors,
    reply,
)
from hubbub.auth.identity import SESSION_COOKIE, cookie_header
from hubbub.auth.names import username_key
from hubbub.auth.passwords import hash_password, password_weakness, verify_password
from hubbub.auth.tokens import random_token, token_hash
from hubbub.errors import Conflict, Forbidden, HubbubError, Invalid, Unauthenticated
from hubbub.models import User
from hubbub.runtime import Runtime
from hubbub.store.base import SessionRecord
from hubbub.wire import PasswordChangedOut, TicketOut, TokenOut, UserOut

router = APIRouter(prefix="/auth", tags=["auth"])

REFRESH_COOKIE = "hubbub_refresh"


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post(
    "/register", status_code=201, responses=reply(UserOut, 201) | errors(409, 413, 422, 429)
)
async def register(body: Register, request: Request, rt: Rt) -> Response:
    """Create an account. Passwords are hashed with argon2id. The username is NFKC-normalised
    and unique regardless of case; a taken name counts as a failed attempt (429 after too many,
    so names cannot be enumerated at speed)."""
    async with rt.sign_ins.attempt(username_key(body.username), _address(request)) as attempt:
        weakness = password_weakness(body.password, body.username)
        if weakness is not None:
            raise Invalid(weakness, code="weak_password")
        taken = Conflict(f"username {body.username!r} is taken", code="username_taken")
        if await rt.store.accounts.user_by_name(body.username) is not None:
            attempt.failed()
            raise taken
        try:
            user = await rt.store.accounts.create_user(
                body.username, await hash_password(body.password)
            )
        except Exception as exc:  # the unique index lost a race with a concurrent register
            if await rt.store.accounts.user_by_name(body.username) is not None:
                attempt.failed()
                raise taken from exc
            raise
    rt.auth.forget_user(user.username)  # a trust-mode name may now be this account
    return respond(request, user, 201)


async def _end_sessions(rt: Runtime, user_id: str, session_ids: list[str]) -> None:
    """The sessions are revoked in the store: stop honouring them here at once, and end every
    stream opened with them, on every node."""
    if not session_ids:
        return
    rt.auth.forget_sessions(session_ids)
    await rt.service.sessions_ended(user_id, session_ids)


async def _issue(rt: Runtime, request: Request, user: User, session: SessionRecord) -> Response:
    refresh = random_token()
    await rt.store.accounts.add_refresh_token(
        token_hash(refresh), session.id, rt.settings.refresh_token_ttl
    )
    access = rt.signer.issue(user.id, session.id, "access", rt.settings.access_token_ttl)
    secure = rt.auth.secure_cookie(request.url.scheme == "https")
    cookie_ttl = int(max(0, session.expires_at - time.time()))
    cookies = [
        cookie_header(
            SESSION_COOKIE,
            rt.signer.issue(user.id, session.id, "session", cookie_ttl),
            max_age=cookie_ttl,
            secure=secure,
        ),
        cookie_header(
            REFRESH_COOKIE,
            refresh,
            max_age=rt.settings.refresh_token_ttl,
            secure=secure,
            path="/auth",
        ),
    ]
    body = {
        "access_token": access,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": rt.settings.access_token_ttl,
        "user": {"id": user.id, "username": user.username},
    }
    return respond(request, body, cookies=cookies)


@router.post("/login", responses=reply(TokenOut) | errors(401, 422, 429))
async def login(body: Credentials, request: Request, rt: Rt) -> Response:
    """Exchange username and password for tokens; also sets the HttpOnly session cookie. The
    username matches regardless of case. After too many failures for a username or from an
    address: 429 with ``Retry-After``, before any password is checked."""
    async with rt.sign_ins.attempt(username_key(body.username), _address(request)) as attempt:
        found = await rt.store.accounts.user_by_name(body.username)
        if not await verify_password(found[1] if found else None, body.password) or found is None:
            attempt.failed()
            raise Unauthenticated("wrong username or password", code="invalid_credentials")
    session = await rt.store.accounts.create_session(found[0].id, rt.settings.session_ttl)
    return await _issue(rt, request, found[0], session)


def _refresh_token(request: Request, body: RefreshIn | None) -> str | None:
    if body is not None and body.refresh_token:
        return body.refresh_token
    return request.cookies.get(REFRESH_COOKIE)


@router.post("/refresh", responses=reply(TokenOut) | errors(401, 422))
async def refresh(request: Request, rt: Rt, body: RefreshIn | None = None) -> Response:
    """Rotate: the refresh token is single-use; presenting a used one ends its session."""
    token = _refresh_token(request, body)
    if not token:
        raise Unauthenticated(
            "give refresh_token (or send the refresh cookie)", code="invalid_refresh_token"
        )
    used = await rt.store.accounts.use_refresh_token(token_hash(token))
    if used is None:
        raise Unauthenticated(
            "the refresh token is unknown or expired", code="invalid_refresh_token"
        )
    state, session = used
    if state == "reused":
        await rt.store.accounts.revoke_session(session.id)
        await _end_sessions(rt, session.user_id, [session.id])
        raise Unauthenticated(
            "the refresh token was already used; the session is ended", code="refresh_token_reused"
        )
    if session.revoked or session.expires_at < time.time():
        raise Unauthenticated("the session has ended; sign in again", code="session_ended")
    user = await rt.store.accounts.user_by_id(session.user_id)
    if user is None:
        raise Unauthenticated("the user no longer exists", code="invalid_refresh_token")
    return await _issue(rt, request, user, session)


@router.post("/logout", responses=errors(401))
async def logout(request: Request, rt: Rt, body: RefreshIn | None = None) -> Response:
    """End the session (its refresh tokens, cookie and access tokens stop working)."""
    session: tuple[str, str] | None = None  # (user id, session id)
    token = _refresh_token(request, body)
    if token:
        used = await rt.store.accounts.use_refresh_token(token_hash(token))
        session = (used[1].user_id, used[1].id) if used else None
    if session is None:
        try:
            who = await current_identity(request)
        except HubbubError:
            who = None
        if who is not None and who.session_id is not None:
            session = (who.user_id, who.session_id)
    if session is None:
        raise Unauthenticated("no session to end", code="not_authenticated")
    user_id, session_id = session
    await rt.store.accounts.revoke_session(session_id)
    await _end_sessions(rt, user_id, [session_id])
    secure = rt.auth.secure_cookie(request.url.scheme == "https")
    cookies = [
        cookie_header(SESSION_COOKIE, "", max_age=0, secure=secure),
        cookie_header(REFRESH_COOKIE, "", max_age=0, secure=secure, path="/auth"),
    ]
    return respond(request, {"status": "logged_out"}, cookies=cookies)


@router.post("/ticket", responses=reply(TicketOut) | errors(401))
async def ticket(request: Request, who: Caller, rt: Rt) -> Response:
    """A one-time ticket for URLs that cannot carry headers (``EventSource``, WebSocket).

    Asked for with a Bearer token or the session cookie (never with a ticket). It opens one
    stream (``GET /chat/events``, ``/chat/room/{id}/events``, ``/chat/ws``, ``…/poll``), once,
    within ``expires_in`` seconds, and only while the session that asked for it lasts; the
    stream ends with that session."""
    value = random_token()
    await rt.store.accounts.add_ticket(
        token_hash(value), who.user_id, who.session_id, rt.settings.ticket_ttl
    )
    return respond(request, {"ticket": value, "expires_in": rt.settings.ticket_ttl})


@router.post("/password", responses=reply(PasswordChangedOut) | errors(401, 403, 413, 422))
async def change_password(
    body: PasswordChangeIn, request: Request, who: Caller, rt: Rt
) -> Response:
    """Change the password (the old one is required). Every other session of the user is
    revoked at once (its tokens, cookie and tickets stop working and its streams end); the
    session making the change keeps working."""
    stored = await rt.store.accounts.password_hash(who.user_id)
    if not await verify_password(stored, body.old_password):
        raise Forbidden("the old password is wrong", code="wrong_password")
    weakness = password_weakness(body.new_password, who.username)
    if weakness is not None:
        raise Invalid(weakness, code="weak_password")
    ended = await rt.store.accounts.set_password(
        who.user_id, await hash_password(body.new_password), keep=who.session_id
    )
    await _end_sessions(rt, who.user_id, ended)
    return respond(request, {"status": "password_changed"})


@router.get("/me", responses=reply(UserOut) | errors(401))
async def me(request: Request, who: Caller) -> Response:
    """Who the server thinks you are."""
    return respond(request, {"id": who.user_id, "username": who.username})
