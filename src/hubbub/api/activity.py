"""Reactions, read receipts, typing and presence: small, frequent, never the message log."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hubbub.api.common import ActivityDep, Caller, MessagesDep, respond
from hubbub.api.schemas import errors, reply
from hubbub.limits import MAX_REACTION_CHARS
from hubbub.models import Message
from hubbub.wire import PresenceOut, ReadOut, TypingOut

router = APIRouter(prefix="/chat", tags=["activity"])


class ReactionIn(BaseModel):
    reaction: str = Field(
        description=f"An emoji or short name, 1-{MAX_REACTION_CHARS} characters, no spaces.",
        examples=["👍"],
    )


class ReadIn(BaseModel):
    seq: int = Field(ge=0, description="The newest seq you have seen; never moves backwards.")


class TypingIn(BaseModel):
    is_typing: bool


class PresenceIn(BaseModel):
    status: Literal["online", "away"]


@router.post(
    "/messages/{message_id}/reactions",
    status_code=201,
    responses=reply(Message, 201) | errors(401, 403, 404, 409, 422),
)
async def add_reaction(
    message_id: str, body: ReactionIn, request: Request, who: Caller, messages: MessagesDep
) -> Response:
    """React (one of each emoji per user). 201 when added, 200 when you had already reacted so.
    Streams a `reaction` event `{message_id, user_id, reaction, room_id, seq, action}`."""
    msg, added = await messages.react(who, message_id, body.reaction, add=True)
    return respond(request, msg, 201 if added else 200)


@router.delete(
    "/messages/{message_id}/reactions/{reaction}",
    responses=reply(Message) | errors(401, 403, 404, 409, 422),
)
async def remove_reaction(
    message_id: str,
    reaction: Annotated[str, Path(description="URL-encoded emoji")],
    request: Request,
    who: Caller,
    messages: MessagesDep,
) -> Response:
    """Take your reaction back (streams `reaction` with `action: "removed"`)."""
    msg, _ = await messages.react(who, message_id, reaction, add=False)
    return respond(request, msg)


@router.post("/room/{room_id}/read", responses=reply(ReadOut) | errors(401, 403, 404, 422))
async def mark_read(
    room_id: str, body: ReadIn, request: Request, who: Caller, messages: MessagesDep
) -> Response:
    """Read receipt: streams `read` `{room_id, user_id, seq}` when the pointer moves."""
    pointer, unread = await messages.mark_read(who, room_id, body.seq)
    return respond(request, {"room_id": room_id, "seq": pointer, "unread": unread})


@router.post("/room/{room_id}/typing", responses=reply(TypingOut) | errors(401, 403, 404, 422))
async def typing(
    room_id: str, body: TypingIn, request: Request, who: Caller, activity: ActivityDep
) -> Response:
    """Typing indicator (seed TypingEvent), never stored. The room's other members get a
    `typing` event on a change only; an indicator not renewed ends by itself after 5 s."""
    told = await activity.set_typing(who, room_id, body.is_typing)
    return respond(request, {"room_id": room_id, "is_typing": body.is_typing, "broadcast": told})


@router.put("/presence", responses=reply(PresenceOut) | errors(401, 422))
async def set_presence(
    body: PresenceIn, request: Request, who: Caller, activity: ActivityDep
) -> Response:
    """Say you are `away` (or back `online`). Online/offline otherwise follow your connections;
    `presence` events go to the streams of every room you are in."""
    status = await activity.set_presence(who, body.status)
    return respond(request, {"user_id": who.user_id, "status": status})
