"""Accounts and sessions over HTTP: register, login, refresh (rotating), logout, one-time
tickets, password change.

The rules (the register race, refresh-token reuse, revoking the other sessions on a password
change, the sign-in failure limit) are ``auth/accounts.py``'s; this module parses the request,
sets and clears the cookies, and picks the status codes.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hubbub.api.common import AccountsDep, AuthDep, Caller, current_identity, respond
from hubbub.api.schemas import (
    Credentials,
    PasswordChangeIn,
    RefreshIn,
    Register,
    errors,
    reply,
)
from hubbub.auth.accounts import Issued
from hubbub.auth.identity import SESSION_COOKIE, Authenticator, Identity, cookie_header
from hubbub.errors import HubbubError
from hubbub.wire import PasswordChangedOut, TicketOut, TokenOut, UserOut

router = APIRouter(prefix="/auth", tags=["auth"])
log = logging.getLogger("hubbub.auth")

REFRESH_COOKIE = "hubbub_refresh"


def _address(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.post(
    "/register", status_code=201, responses=reply(UserOut, 201) | errors(409, 413, 422, 429)
)
async def register(body: Register, request: Request, accounts: AccountsDep) -> Response:
    """Create an account. Passwords are hashed with argon2id. The username is NFKC-normalised
    and unique regardless of case; a taken name counts as a failed attempt (429 after too many,
    so names cannot be enumerated at speed)."""
    user = await accounts.register(body.username, body.password, _address(request))
    return respond(request, user, 201)


def _issued(request: Request, auth: Authenticator, issued: Issued) -> Response:
    secure = auth.secure_cookie(request.url.scheme == "https")
    cookies = [
        cookie_header(
            SESSION_COOKIE, issued.session_token, max_age=issued.session_ttl, secure=secure
        ),
        cookie_header(
            REFRESH_COOKIE,
            issued.refresh_token,
            max_age=issued.refresh_ttl,
            secure=secure,
            path="/auth",
        ),
    ]
    body = {
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "token_type": "bearer",
        "expires_in": issued.access_ttl,
        "user": {"id": issued.user.id, "username": issued.user.username},
    }
    return respond(request, body, cookies=cookies)


@router.post("/login", responses=reply(TokenOut) | errors(401, 422, 429))
async def login(
    body: Credentials, request: Request, accounts: AccountsDep, auth: AuthDep
) -> Response:
    """Exchange username and password for tokens; also sets the HttpOnly session cookie. The
    username matches regardless of case. After too many failures for a username or from an
    address: 429 with ``Retry-After``, before any password is checked."""
    try:
        issued = await accounts.login(body.username, body.password, _address(request))
    except HubbubError as exc:  # what an operator watches for (and fail2ban can read)
        log.warning(
            "sign-in refused (%s) for %r from %s", exc.code, body.username, _address(request)
        )
        raise
    return _issued(request, auth, issued)


def _refresh_token(request: Request, body: RefreshIn | None) -> str | None:
    if body is not None and body.refresh_token:
        return body.refresh_token
    return request.cookies.get(REFRESH_COOKIE)


@router.post("/refresh", responses=reply(TokenOut) | errors(401, 422))
async def refresh(
    request: Request, accounts: AccountsDep, auth: AuthDep, body: RefreshIn | None = None
) -> Response:
    """Rotate: the refresh token is single-use; presenting a used one ends its session."""
    issued = await accounts.refresh(_refresh_token(request, body))
    return _issued(request, auth, issued)


@router.post("/logout", responses=errors(401))
async def logout(
    request: Request, accounts: AccountsDep, auth: AuthDep, body: RefreshIn | None = None
) -> Response:
    """End the session (its refresh tokens, cookie and access tokens stop working)."""

    async def caller() -> Identity | None:
        try:
            return await current_identity(request)
        except HubbubError:
            return None

    await accounts.logout(_refresh_token(request, body), caller)
    secure = auth.secure_cookie(request.url.scheme == "https")
    cookies = [
        cookie_header(SESSION_COOKIE, "", max_age=0, secure=secure),
        cookie_header(REFRESH_COOKIE, "", max_age=0, secure=secure, path="/auth"),
    ]
    return respond(request, {"status": "logged_out"}, cookies=cookies)


@router.post("/ticket", responses=reply(TicketOut) | errors(401))
async def ticket(request: Request, who: Caller, accounts: AccountsDep) -> Response:
    """A one-time ticket for URLs that cannot carry headers (``EventSource``, WebSocket).

    Asked for with a Bearer token or the session cookie (never with a ticket). It opens one
    stream (``GET /chat/events``, ``/chat/room/{id}/events``, ``/chat/ws``, ``…/poll``), once,
    within ``expires_in`` seconds, and only while the session that asked for it lasts; the
    stream ends with that session."""
    value = await accounts.ticket(who)
    return respond(request, {"ticket": value, "expires_in": accounts.ticket_ttl})


@router.post("/password", responses=reply(PasswordChangedOut) | errors(401, 403, 413, 422))
async def change_password(
    body: PasswordChangeIn, request: Request, who: Caller, accounts: AccountsDep
) -> Response:
    """Change the password (the old one is required). Every other session of the user is
    revoked at once (its tokens, cookie and tickets stop working and its streams end); the
    session making the change keeps working."""
    await accounts.change_password(who, body.old_password, body.new_password)
    return respond(request, {"status": "password_changed"})


@router.get("/me", responses=reply(UserOut) | errors(401))
async def me(request: Request, who: Caller) -> Response:
    """Who the server thinks you are."""
    return respond(request, {"id": who.user_id, "username": who.username})
