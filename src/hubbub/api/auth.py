"""Accounts and sessions: register, login, refresh (rotating), logout, one-time tickets."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hubbub.api.common import Caller, Rt, current_identity, respond
from hubbub.api.schemas import (
    Credentials,
    RefreshIn,
    Register,
    TicketOut,
    TokenOut,
    UserOut,
    errors,
)
from hubbub.auth.identity import SESSION_COOKIE, cookie_header
from hubbub.auth.passwords import hash_password, verify_password
from hubbub.auth.tokens import random_token, token_hash
from hubbub.errors import Conflict, HubbubError, Unauthenticated
from hubbub.models import User
from hubbub.runtime import Runtime
from hubbub.store.base import SessionRecord

router = APIRouter(prefix="/auth", tags=["auth"])

REFRESH_COOKIE = "hubbub_refresh"


@router.post("/register", status_code=201, response_model=UserOut, responses=errors(409, 413, 422))
async def register(body: Register, request: Request, rt: Rt) -> Response:
    """Create an account. Passwords are hashed with argon2id."""
    if await rt.store.user_by_name(body.username) is not None:
        raise Conflict(f"username {body.username!r} is taken", code="username_taken")
    try:
        user = await rt.store.create_user(body.username, await hash_password(body.password))
    except Exception as exc:  # the unique index lost a race with a concurrent register
        if await rt.store.user_by_name(body.username) is not None:
            raise Conflict(f"username {body.username!r} is taken", code="username_taken") from exc
        raise
    return respond(request, user, 201)


async def _issue(rt: Runtime, request: Request, user: User, session: SessionRecord) -> Response:
    refresh = random_token()
    await rt.store.add_refresh_token(token_hash(refresh), session.id, rt.settings.refresh_token_ttl)
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


@router.post("/login", response_model=TokenOut, responses=errors(401, 422))
async def login(body: Credentials, request: Request, rt: Rt) -> Response:
    """Exchange username and password for tokens; also sets the HttpOnly session cookie."""
    found = await rt.store.user_by_name(body.username)
    if not await verify_password(found[1] if found else None, body.password) or found is None:
        raise Unauthenticated("wrong username or password", code="invalid_credentials")
    session = await rt.store.create_session(found[0].id, rt.settings.session_ttl)
    return await _issue(rt, request, found[0], session)


def _refresh_token(request: Request, body: RefreshIn | None) -> str | None:
    if body is not None and body.refresh_token:
        return body.refresh_token
    return request.cookies.get(REFRESH_COOKIE)


@router.post("/refresh", response_model=TokenOut, responses=errors(401, 422))
async def refresh(request: Request, rt: Rt, body: RefreshIn | None = None) -> Response:
    """Rotate: the refresh token is single-use; presenting a used one ends its session."""
    token = _refresh_token(request, body)
    if not token:
        raise Unauthenticated(
            "give refresh_token (or send the refresh cookie)", code="invalid_refresh_token"
        )
    used = await rt.store.use_refresh_token(token_hash(token))
    if used is None:
        raise Unauthenticated(
            "the refresh token is unknown or expired", code="invalid_refresh_token"
        )
    state, session = used
    if state == "reused":
        await rt.store.revoke_session(session.id)
        rt.auth.forget_session(session.id)
        raise Unauthenticated(
            "the refresh token was already used; the session is ended", code="refresh_token_reused"
        )
    if session.revoked or session.expires_at < time.time():
        raise Unauthenticated("the session has ended; sign in again", code="session_ended")
    user = await rt.store.user_by_id(session.user_id)
    if user is None:
        raise Unauthenticated("the user no longer exists", code="invalid_refresh_token")
    return await _issue(rt, request, user, session)


@router.post("/logout", responses=errors(401))
async def logout(request: Request, rt: Rt, body: RefreshIn | None = None) -> Response:
    """End the session (its refresh tokens, cookie and access tokens stop working)."""
    session_id: str | None = None
    token = _refresh_token(request, body)
    if token:
        used = await rt.store.use_refresh_token(token_hash(token))
        session_id = used[1].id if used else None
    if session_id is None:
        try:
            session_id = (await current_identity(request)).session_id
        except HubbubError:
            session_id = None
    if session_id is None:
        raise Unauthenticated("no session to end", code="not_authenticated")
    await rt.store.revoke_session(session_id)
    rt.auth.forget_session(session_id)
    secure = rt.auth.secure_cookie(request.url.scheme == "https")
    cookies = [
        cookie_header(SESSION_COOKIE, "", max_age=0, secure=secure),
        cookie_header(REFRESH_COOKIE, "", max_age=0, secure=secure, path="/auth"),
    ]
    return respond(request, {"status": "logged_out"}, cookies=cookies)


@router.post("/ticket", response_model=TicketOut, responses=errors(401))
async def ticket(request: Request, who: Caller, rt: Rt) -> Response:
    """A one-time ticket for URLs that cannot carry headers (``EventSource``, WebSocket)."""
    value = random_token()
    await rt.store.add_ticket(token_hash(value), who.user_id, rt.settings.ticket_ttl)
    return respond(request, {"ticket": value, "expires_in": rt.settings.ticket_ttl})


@router.get("/me", response_model=UserOut, responses=errors(401))
async def me(request: Request, who: Caller) -> Response:
    """Who the server thinks you are."""
    return respond(request, {"id": who.user_id, "username": who.username})
