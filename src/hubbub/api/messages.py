"""History, edits and deletes. (Sending is the raw route in ``api/send.py``.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from hubbub.api.common import Caller, MessagesDep, SettingsDep, respond
from hubbub.api.schemas import EditIn, errors, reply
from hubbub.models import MAX_SEQ, Message

router = APIRouter(prefix="/chat", tags=["messages"])


@router.get("/room/{room_id}/history", responses=reply(list[Message]) | errors(401, 404, 422))
async def history(
    room_id: str,
    request: Request,
    who: Caller,
    messages: MessagesDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="page backwards: seq < before")
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="page forwards: seq > after")
    ] = None,
) -> Response:
    """Messages oldest first. Without ``before``/``after``: the newest ``limit``.

    A deleted message stays with ``deleted: true``, empty ``text`` and ``file: null``.
    """
    limit = min(limit, settings.history_max_limit)
    msgs = await messages.history(who, room_id, after=after, before=before, limit=limit)
    return respond(request, msgs)


@router.patch("/messages/{message_id}", responses=reply(Message) | errors(401, 403, 404, 409, 422))
async def edit(
    message_id: str, body: EditIn, request: Request, who: Caller, messages: MessagesDep
) -> Response:
    """Edit your own message (streams ``message_edited``)."""
    return respond(request, await messages.edit(who, message_id, body.message))


@router.delete("/messages/{message_id}", responses=reply(Message) | errors(401, 403, 404, 409))
async def delete(message_id: str, request: Request, who: Caller, messages: MessagesDep) -> Response:
    """Delete your own message, or any as a room admin (streams ``message_deleted``)."""
    return respond(request, await messages.delete(who, message_id))
