"""The server API: what the application's own backend calls, with a server key
(``--server-key``; several comma-separated keys are all accepted, so a key can be rotated
without downtime). The rules are in ``chat/backend.py``; this module is HTTP only."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from hubbub.api.common import respond, runtime
from hubbub.api.schemas import errors, reply
from hubbub.chat.backend import BackendRules
from hubbub.encoding import cursor
from hubbub.errors import Forbidden, Unauthenticated
from hubbub.models import Member
from hubbub.wire import NotificationOut, SendOut, StatusOut, UserOut


def require_server_key(request: Request) -> BackendRules:
    """``Authorization: Bearer <server key>``: none is 401; anything else (a user's token, an
    old key, any key while the server API is off) is 403. Keys are compared in constant time."""
    given = request.headers.get("authorization")
    if given is None:
        raise Unauthenticated(
            "the server API needs 'Authorization: Bearer <server key>'",
            code="server_key_required",
        )
    scheme, _, token = given.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(
            "Authorization must be 'Bearer <server key>'", code="server_key_required"
        )
    rt = runtime(request)
    keys = rt.settings.server_keys()
    if not keys:
        raise Forbidden(
            "the server API is off: start Hubbub with --server-key", code="server_api_disabled"
        )
    presented = token.encode()
    if not any(hmac.compare_digest(presented, k.encode()) for k in keys):
        raise Forbidden("the server API takes a server key, not this", code="not_a_server_key")
    return rt.backend


Backend = Annotated[BackendRules, Depends(require_server_key)]

router = APIRouter(prefix="/server", tags=["server API"])

_AUTH_ERRORS = (401, 403)


class ServerMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: str
    user_id: str | None = Field(
        None, description="speak as this user (a member); absent: a `system` message"
    )
    client_msg_id: str | None = None


class NotificationIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event: str = Field(description="your event type, e.g. `order.created`")
    data: Any = Field(None, description="any JSON value, delivered as is")


class BroadcastIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event: str = Field(description="`[a-z][a-z0-9_.-]{0,63}`, not one of Hubbub's own events")
    data: Any = None


class ProvisionUserIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: str
    username: str | None = Field(None, description="default: the user id")


class MemberIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    user_id: str


@router.post(
    "/rooms/{room_id}/messages",
    status_code=201,
    responses=reply(SendOut, 201)
    | reply(SendOut, 200, "repeat of a client_msg_id: the original")
    | errors(*_AUTH_ERRORS, 404, 409, 422, 503),
)
async def post_message(
    room_id: str, body: ServerMessageIn, request: Request, backend: Backend
) -> Response:
    """Store and stream a message as `user_id`, or as a `system` message (`type: "system"`,
    `user_id: "system"`) when it is absent. 201 once durably stored; a repeat of a
    `client_msg_id` answers 200 with the original, as users' sends do."""
    sent = await backend.post(
        room_id, body.message, user_id=body.user_id, client_msg_id=body.client_msg_id
    )
    return respond(
        request, {"status": "sent", "message": sent.message}, 201 if sent.created else 200
    )


@router.post(
    "/users/{user_id}/notifications",
    status_code=201,
    responses=reply(NotificationOut, 201) | errors(*_AUTH_ERRORS, 404, 422, 503),
)
async def notify(
    user_id: str, body: NotificationIn, request: Request, backend: Backend
) -> Response:
    """Seed 000's `SendToUser(userID, eventType, data)`: stored, and delivered as
    `event: notification` (data `{"event", "data", "created_at"}`) on every `/chat/events` and
    WebSocket connection of the user, and as `event: message` (data: your `data`) on
    `GET /api/sse`; replayed on resume like any stored change."""
    change = await backend.notify(user_id, body.event, body.data)
    stored = msgspec.json.decode(change.data)
    out = {"id": cursor(change.position), **stored}
    return respond(request, {"status": "sent", "notification": out}, 201)


@router.post(
    "/rooms/{room_id}/broadcast",
    responses=reply(StatusOut) | errors(*_AUTH_ERRORS, 404, 422),
)
async def broadcast(
    room_id: str, body: BroadcastIn, request: Request, backend: Backend
) -> Response:
    """A live-only custom event to everyone subscribed to the room now, as `event: <event>`
    (never stored, never replayed)."""
    await backend.broadcast(room_id, body.event, body.data)
    return respond(request, {"status": "sent"})


@router.post(
    "/users",
    status_code=201,
    responses=reply(UserOut, 201)
    | reply(UserOut, 200, "the user existed (renamed if `username` differs)")
    | errors(*_AUTH_ERRORS, 409, 422),
)
async def provision_user(body: ProvisionUserIn, request: Request, backend: Backend) -> Response:
    """Create a user from your own records (no password: they sign in with your tokens or
    act through your backend). A repeat is 200; a different `username` renames them."""
    user, created = await backend.provision_user(body.user_id, body.username or body.user_id)
    return respond(request, {"id": user.id, "username": user.username}, 201 if created else 200)


@router.delete("/users/{user_id}", status_code=204, responses=errors(*_AUTH_ERRORS, 404, 422))
async def delete_user(user_id: str, backend: Backend) -> Response:
    """Remove the user from every room (each `member_left` streamed, their streams of it
    ending at once), end every session and stream of theirs, and delete the account. Their
    messages stay."""
    await backend.delete_user(user_id)
    return Response(status_code=204)


@router.post(
    "/rooms/{room_id}/members",
    status_code=201,
    responses=reply(Member, 201)
    | reply(Member, 200, "already a member")
    | errors(*_AUTH_ERRORS, 404, 422),
)
async def add_member(room_id: str, body: MemberIn, request: Request, backend: Backend) -> Response:
    """Make a user a member of a room (public or private): `member_joined`, `room_added`."""
    member, added = await backend.add_member(room_id, body.user_id)
    return respond(request, member, 201 if added else 200)


@router.delete(
    "/rooms/{room_id}/members/{user_id}",
    status_code=204,
    responses=errors(*_AUTH_ERRORS, 404, 422),
)
async def remove_member(room_id: str, user_id: str, backend: Backend) -> Response:
    """Removal revokes at once: within a second no connection of the user receives another
    event of the room (`member_left`, `room_removed`). Not a member: 204 all the same."""
    await backend.remove_member(room_id, user_id)
    return Response(status_code=204)
