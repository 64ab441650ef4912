"""Rooms and membership."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hubbub.api.common import Caller, RoomsDep, respond
from hubbub.api.schemas import InviteIn, RoomIn, RoomPatch, errors, reply
from hubbub.models import Message, Role, Room
from hubbub.wire import InviteOut, JoinOut, LeaveOut, MemberList, RemovedOut, RoomList, RoomOut

router = APIRouter(prefix="/chat", tags=["rooms"])


def room_json(
    room: Room, role: Role | None, unread: int | None = None, last: Message | None = None
) -> dict[str, Any]:
    return {
        "id": room.id,
        "name": room.name,
        "visibility": room.visibility,
        "created_by": room.created_by,
        "created_at": room.created_at,
        "last_seq": room.last_seq,
        "member": role is not None,
        "role": role,
        "unread": unread,
        "last_message": last,
    }


@router.post("/rooms", status_code=201, responses=reply(RoomOut, 201) | errors(401, 409, 422))
async def create_room(body: RoomIn, request: Request, who: Caller, rooms: RoomsDep) -> Response:
    """Create a room; the creator is its first member and admin."""
    room = await rooms.create_room(who, body.name, body.visibility, body.id)
    return respond(request, room_json(room, "admin"), 201)


@router.get("/rooms", responses=reply(RoomList) | errors(401))
async def list_rooms(request: Request, who: Caller, rooms: RoomsDep) -> Response:
    """The rooms you belong to and every public room (``member`` tells which)."""
    views = await rooms.rooms(who)
    rooms_out = [room_json(v.room, v.role, v.unread, v.last_message) for v in views]
    return respond(request, {"rooms": rooms_out})


@router.get("/room/{room_id}", responses=reply(RoomOut) | errors(401, 404))
async def room_details(room_id: str, request: Request, who: Caller, rooms: RoomsDep) -> Response:
    room, role = await rooms.readable_room(who, room_id)
    return respond(request, room_json(room, role))


@router.patch("/room/{room_id}", responses=reply(RoomOut) | errors(401, 403, 404, 422))
async def update_room(
    room_id: str, body: RoomPatch, request: Request, who: Caller, rooms: RoomsDep
) -> Response:
    """Room admins: rename the room or change its visibility. Every member's streams get
    ``room_updated`` (data: the room), also on resume."""
    room = await rooms.update_room(who, room_id, name=body.name, visibility=body.visibility)
    return respond(request, room_json(room, "admin"))


@router.post("/room/{room_id}/join", responses=reply(JoinOut) | errors(401, 404))
async def join(room_id: str, request: Request, who: Caller, rooms: RoomsDep) -> Response:
    """Join a public room (streams a ``member_joined`` event)."""
    room, role, joined = await rooms.join(who, room_id)
    return respond(request, {"room": room_json(room, role), "joined": joined})


@router.post("/room/{room_id}/leave", responses=reply(LeaveOut) | errors(401, 404))
async def leave(room_id: str, request: Request, who: Caller, rooms: RoomsDep) -> Response:
    """Leave a room (streams ``member_left``); leaving twice is not an error."""
    return respond(request, {"left": await rooms.leave(who, room_id)})


@router.get("/room/{room_id}/members", responses=reply(MemberList) | errors(401, 404))
async def members(room_id: str, request: Request, who: Caller, rooms: RoomsDep) -> Response:
    return respond(request, {"members": await rooms.members(who, room_id)})


@router.post(
    "/room/{room_id}/members",
    status_code=201,
    responses=reply(InviteOut, 201) | errors(401, 403, 404, 422),
)
async def invite(
    room_id: str, body: InviteIn, request: Request, who: Caller, rooms: RoomsDep
) -> Response:
    """Add someone (by ``user_id`` or ``username``); 201 when added, 200 when already in."""
    member, added = await rooms.invite(who, room_id, user_id=body.user_id, username=body.username)
    return respond(request, {"member": member, "added": added}, 201 if added else 200)


@router.delete(
    "/room/{room_id}/members/{user_id}",
    responses=reply(RemovedOut) | errors(401, 403, 404),
)
async def remove_member(
    room_id: str, user_id: str, request: Request, who: Caller, rooms: RoomsDep
) -> Response:
    """Room admins: remove a member (``member_left``). Within a second none of their streams
    receives the room any more: a room stream ends, ``/chat/events`` and the WebSocket drop
    the room and get ``room_removed``."""
    removed = await rooms.remove_member(who, room_id, user_id)
    return respond(request, {"removed": removed})
