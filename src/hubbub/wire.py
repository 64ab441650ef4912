"""Every JSON body of the API, described once, as msgspec structs: the raw routes decode their
requests with them, and ``/openapi.json`` documents every request and response from their JSON
schema (``msgspec.json.schema_components``). Where a body is a domain record (a message, a
file, a member) the record in ``models.py`` is the description.

Constraints meant for the documentation only go in ``extra_json_schema``, which msgspec does
not enforce: the checks that own them answer with their own error codes (``invalid_room_id``,
``message_too_long``…), which a decoder-level constraint would replace with a generic one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from hubbub.limits import MAX_CLIENT_MSG_ID, MAX_MESSAGE_CHARS, ROOM_ID_PATTERN
from hubbub.models import MAX_SEQ, ClientTimestamp, Member, Message, Role, Visibility


def _doc(description: str | None = None, **schema: Any) -> msgspec.Meta:
    """A field's documentation, never a check (see the module docstring)."""
    return msgspec.Meta(description=description, extra_json_schema=schema or None)


# Errors ------------------------------------------------------------------------------------


class ErrorDetail(msgspec.Struct):
    code: Annotated[str, msgspec.Meta(examples=["not_a_member"])]
    message: str
    details: Any = None


# Every error, whatever the route (``api/errors.py``, ``api/raw.send_error``).
class ErrorBody(msgspec.Struct):
    error: ErrorDetail


# Messages ----------------------------------------------------------------------------------


# ``POST /chat/messages``
class SendBody(msgspec.Struct, forbid_unknown_fields=False):
    room_id: Annotated[str, _doc(pattern=f"^{ROOM_ID_PATTERN}$")]
    message: Annotated[
        str, _doc(f"1-{MAX_MESSAGE_CHARS} Unicode code points, not only whitespace.")
    ]
    timestamp: ClientTimestamp = None
    client_msg_id: Annotated[
        Annotated[str, _doc(maxLength=MAX_CLIENT_MSG_ID)] | None,
        _doc("Idempotency key, unique per user."),
    ] = None
    user_id: Annotated[
        str | None, _doc("Seed compatibility: in jwt mode must name the caller.")
    ] = None


class SendOut(msgspec.Struct):
    status: Literal["sent"]
    message: Message


class ChangeEvent(msgspec.Struct):
    event: str
    id: int | str
    data: dict[str, Any]


# A long poll with ``changes=1``: every stored change after ``after``, in order.
class ChangesPage(msgspec.Struct):
    events: list[ChangeEvent]
    next: str


class SearchHitOut(Message, frozen=True):
    """A found message: the message as everywhere else, plus where the query matched."""

    highlights: Annotated[
        list[tuple[int, int]],
        _doc(
            "[start, end) offsets into `text` in Unicode code points (string indices), one "
            "per matching word, in order. Plain offsets, never markup: slice the text and "
            "render each part as text.",
            examples=[[[0, 4], [12, 17]]],
        ),
    ] = msgspec.field(default_factory=list)


class SearchOut(msgspec.Struct):
    results: Annotated[list[SearchHitOut], _doc("Best match first (bm25), then newest.")]
    next_before: Annotated[
        str | None,
        _doc("Opaque cursor: pass it as `before` for the next page; null on the last."),
    ]


class ReadOut(msgspec.Struct):
    room_id: str
    seq: Annotated[int, _doc("Your read pointer after this call.")]
    unread: int


class TypingOut(msgspec.Struct):
    room_id: str
    is_typing: bool
    broadcast: Annotated[bool, _doc("False when nothing changed (a renewal): throttled.")]


class PresenceOut(msgspec.Struct):
    user_id: str
    status: Literal["online", "away", "offline"]


# Rooms -------------------------------------------------------------------------------------


class RoomOut(msgspec.Struct):
    id: str
    name: str
    visibility: Visibility
    created_by: str | None
    created_at: str
    last_seq: Annotated[int, _doc("The newest message's seq (0 when empty).")]
    member: bool
    role: Role | None
    unread: Annotated[
        int | None, _doc("Messages after your read pointer (null when not a member).")
    ] = None
    last_message: Annotated[Message | None, _doc("The newest message (in lists).")] = None


class RoomList(msgspec.Struct):
    rooms: list[RoomOut]


class MemberList(msgspec.Struct):
    members: list[Member]


class JoinOut(msgspec.Struct):
    room: RoomOut
    joined: bool


class LeaveOut(msgspec.Struct):
    left: bool


class InviteOut(msgspec.Struct):
    member: Member
    added: bool


class RemovedOut(msgspec.Struct):
    removed: bool


# Accounts ----------------------------------------------------------------------------------


class UserOut(msgspec.Struct):
    id: str
    username: str
    created_at: str | None = None


class TokenOut(msgspec.Struct):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int
    user: UserOut


class TicketOut(msgspec.Struct):
    ticket: str
    expires_in: int


class PasswordChangedOut(msgspec.Struct):
    status: Literal["password_changed"]


# Server API --------------------------------------------------------------------------------


class Notification(msgspec.Struct):
    id: Annotated[str, _doc("Its cursor: as valid as any `id` of `/chat/events`.")]
    event: str
    data: Any
    created_at: str


class NotificationOut(msgspec.Struct):
    status: Literal["sent"]
    notification: Notification


class StatusOut(msgspec.Struct):
    status: Literal["sent"]


# WebSocket ops -----------------------------------------------------------------------------

Seq = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]


class WsOp(msgspec.Struct, forbid_unknown_fields=False):
    """A client frame on ``/chat/ws`` (``docs/api.md``): one struct for every op, whose
    fields each op reads."""

    op: str
    ref: Any = None
    room_id: str | None = None
    after_seq: Seq | str | None = None  # a message seq, or a change's id ("r<rev>")
    message: str | None = None
    client_msg_id: str | None = None
    timestamp: ClientTimestamp = None
    is_typing: bool | None = None
    seq: Seq | None = None


class WsRef(msgspec.Struct, forbid_unknown_fields=False):
    """Only the ``ref`` of a frame that is not a valid op, so its error can carry it."""

    ref: Any = None


# The bodies ``/openapi.json`` describes (their schemas become its components).
DOCUMENTED: tuple[type, ...] = (
    ErrorBody,
    SendBody,
    SendOut,
    ChangesPage,
    SearchOut,
    ReadOut,
    TypingOut,
    PresenceOut,
    RoomOut,
    RoomList,
    MemberList,
    JoinOut,
    LeaveOut,
    InviteOut,
    RemovedOut,
    UserOut,
    TokenOut,
    TicketOut,
    PasswordChangedOut,
    Notification,
    NotificationOut,
    StatusOut,
)
