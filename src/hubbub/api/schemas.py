"""Request and response shapes, for validation and for ``/openapi.json``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hubbub.auth.names import display_name_problem, normalise, username_problem


def _username(value: str) -> str:
    name = normalise(value)
    problem = username_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def _display_name(value: str) -> str:
    problem = display_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


Username = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        description="3-32 letters (any script), digits, '_', '.', '-'; NFKC-normalised and "
        "unique regardless of case (Alice = alice).",
    ),
    AfterValidator(_username),
]
RoomName = Annotated[
    str,
    Field(min_length=1, max_length=100),
    AfterValidator(_display_name),
]


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_a_member"])
    message: str
    details: Any | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class FileOut(BaseModel):
    id: str
    url: str
    name: str
    size: int
    content_type: str


class MessageOut(BaseModel):
    """A chat message. ``seq`` is per room, starts at 1 and grows by exactly 1."""

    id: str
    room_id: str
    seq: int
    user_id: str
    username: str
    type: Literal["text", "file", "system"]
    text: str = Field(description="Exactly as sent; render as text, never as HTML.")
    created_at: str = Field(description="Server time, RFC 3339 UTC with milliseconds.")
    timestamp: int | float | str | None = Field(
        None, description="The client's timestamp, echoed unchanged."
    )
    client_msg_id: str | None = None
    edited_at: str | None = None
    deleted: bool = False
    reactions: dict[str, list[str]] = Field(default_factory=dict)
    file: FileOut | None = None


class SendIn(BaseModel):
    room_id: str = Field(pattern=r"^[A-Za-z0-9_.:~-]{1,64}$")
    message: str = Field(description="1-4000 Unicode code points, not only whitespace.")
    timestamp: int | float | str | None = None
    client_msg_id: str | None = Field(
        None, max_length=128, description="Idempotency key, unique per user."
    )
    user_id: str | None = Field(
        None, description="Seed compatibility: in jwt mode must name the caller."
    )


class SendOut(BaseModel):
    status: Literal["sent"]
    message: MessageOut


class EditIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: str


class Credentials(BaseModel):
    username: str
    password: str


class Register(BaseModel):
    username: Username
    password: str = Field(
        max_length=256,
        description="At least 8 characters, not the username, not a common password "
        "(else 422 weak_password).",
    )


class UserOut(BaseModel):
    id: str
    username: str
    created_at: str | None = None


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int
    user: UserOut


class RefreshIn(BaseModel):
    refresh_token: str | None = None


class TicketOut(BaseModel):
    ticket: str
    expires_in: int


class PasswordChangeIn(BaseModel):
    old_password: str = Field(max_length=256)
    new_password: str = Field(
        max_length=256,
        description="At least 8 characters, not the username, not a common password.",
    )


class PasswordChangedOut(BaseModel):
    status: Literal["password_changed"]


class RoomIn(BaseModel):
    name: RoomName
    visibility: Literal["public", "private"] = "public"
    id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.:~-]{1,64}$",
        description="Optional readable id; generated when absent.",
    )


class RoomPatch(BaseModel):
    """Room admins: rename, or change visibility (streamed as ``room_updated``)."""

    name: RoomName | None = None
    visibility: Literal["public", "private"] | None = None


class RemovedOut(BaseModel):
    removed: bool


class RoomOut(BaseModel):
    id: str
    name: str
    visibility: Literal["public", "private"]
    created_by: str | None
    created_at: str
    last_seq: int = Field(description="The newest message's seq (0 when empty).")
    member: bool
    role: Literal["admin", "member"] | None
    unread: int | None = Field(
        None, description="Messages after your read pointer (null when not a member)."
    )
    last_message: MessageOut | None = Field(None, description="The newest message (in lists).")


class RoomList(BaseModel):
    rooms: list[RoomOut]


class MemberOut(BaseModel):
    user_id: str
    username: str
    role: Literal["admin", "member"]
    joined_at: str
    presence: Literal["online", "away", "offline"] = "offline"


class MemberList(BaseModel):
    members: list[MemberOut]


class InviteIn(BaseModel):
    user_id: str | None = None
    username: str | None = None


class JoinOut(BaseModel):
    room: RoomOut
    joined: bool


class LeaveOut(BaseModel):
    left: bool


class InviteOut(BaseModel):
    member: MemberOut
    added: bool


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "Malformed request",
        401: "Not authenticated",
        403: "Not allowed",
        404: "Unknown, or private and not visible to the caller",
        409: "Conflict",
        413: "Body too large",
        415: "Wrong media type",
        422: "Invalid field",
        429: "Rate limited (see Retry-After)",
        503: "Store or broker unavailable; nothing changed",
    }.items()
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: ERRORS[c] for c in codes}


# search ------------------------------------------------------------------------------------


class SearchHitOut(MessageOut):
    """A found message: the message as everywhere else, plus where the query matched."""

    highlights: list[tuple[int, int]] = Field(
        default_factory=list,
        description=(
            "[start, end) offsets into `text` in Unicode code points (string indices), one "
            "per matching word, in order. Plain offsets, never markup: slice the text and "
            "render each part as text."
        ),
        examples=[[[0, 4], [12, 17]]],
    )


class SearchOut(BaseModel):
    results: list[SearchHitOut] = Field(description="Best match first (bm25), then newest.")
    next_before: str | None = Field(
        description="Opaque cursor: pass it as `before` for the next page; null on the last."
    )
