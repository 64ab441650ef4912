"""Full-text search over the messages the caller may read."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from hubbub.api.common import Caller, MessagesDep, respond
from hubbub.api.schemas import errors, reply
from hubbub.fulltext import MAX_QUERY_CHARS
from hubbub.wire import SearchOut

router = APIRouter(prefix="/chat", tags=["search"])


@router.get("/search", responses=reply(SearchOut) | errors(400, 401, 404, 422))
async def search(
    request: Request,
    who: Caller,
    messages: MessagesDep,
    q: Annotated[
        str,
        Query(
            description=(
                f"Words to find (at most {MAX_QUERY_CHARS} characters). Every word must occur; "
                "the last one also matches as a prefix. Case and accents do not matter; "
                "punctuation and operators are ignored (422 `invalid_query` if no word is left)."
            )
        ),
    ],
    room_id: Annotated[
        str | None, Query(description="Only this room (404 if you cannot read it).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[
        str | None,
        Query(description="The `next_before` of the previous page (400 `invalid_cursor`)."),
    ] = None,
) -> Response:
    """Messages you may read — your rooms and every public room — best match first.

    Deleted messages are never found; an edited one is found by its current text. Each result
    is the message plus `highlights`: `[start, end)` code-point offsets of the matched words in
    `text` (plain offsets, never HTML).
    """
    hits, cursor = await messages.search(who, q, room_id=room_id, limit=limit, before=before)
    results: list[dict[str, Any]] = []
    for message, spans in hits:
        item = msgspec.structs.asdict(message)
        item["highlights"] = spans
        results.append(item)
    return respond(request, {"results": results, "next_before": cursor})
