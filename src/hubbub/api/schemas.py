"""What FastAPI needs to validate and document its routes: the request bodies it validates
(pydantic, each limit from ``hubbub.limits``) and the documentation of the answers, which the
routes encode with msgspec (``api/common.respond``) and ``wire.py`` describes."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hubbub.auth.names import (
    USERNAME_MAX,
    USERNAME_MIN,
    display_name_problem,
    normalise,
    username_problem,
)
from hubbub.limits import MAX_PASSWORD_CHARS, MAX_RAW_USERNAME_CHARS, MAX_ROOM_NAME, ROOM_ID_PATTERN
from hubbub.models import Visibility

# Where a wire type's schema is found: ``api/openapi.py`` adds every ``wire.DOCUMENTED`` there.
REF_TEMPLATE = "#/components/schemas/{name}"


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
        max_length=MAX_RAW_USERNAME_CHARS,
        description=f"{USERNAME_MIN}-{USERNAME_MAX} letters (any script), digits, '_', '.', "
        "'-'; NFKC-normalised and unique regardless of case (Alice = alice).",
    ),
    AfterValidator(_username),
]
RoomName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ROOM_NAME),
    AfterValidator(_display_name),
]
Password = Annotated[str, Field(max_length=MAX_PASSWORD_CHARS)]


class EditIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    message: str


class Credentials(BaseModel):
    username: str
    password: str


class Register(BaseModel):
    username: Username
    password: Password = Field(
        description="At least 8 characters, not the username, not a common password "
        "(else 422 weak_password).",
    )


class RefreshIn(BaseModel):
    refresh_token: str | None = None


class PasswordChangeIn(BaseModel):
    old_password: Password
    new_password: Password = Field(
        description="At least 8 characters, not the username, not a common password.",
    )


class RoomIn(BaseModel):
    name: RoomName
    visibility: Visibility = "public"
    id: str | None = Field(
        None,
        pattern=f"^{ROOM_ID_PATTERN}$",
        description="Optional readable id; generated when absent.",
    )


class RoomPatch(BaseModel):
    """Room admins: rename, or change visibility (streamed as ``room_updated``)."""

    name: RoomName | None = None
    visibility: Visibility | None = None


class InviteIn(BaseModel):
    user_id: str | None = None
    username: str | None = None


# Answers -----------------------------------------------------------------------------------


def wire_schema(model: Any) -> dict[str, Any]:
    """A wire type's JSON schema, its structs as references to the document's components."""
    (schema,), _ = msgspec.json.schema_components([model], ref_template=REF_TEMPLATE)
    return schema


def reply(
    model: Any, status: int = 200, description: str = "Successful Response"
) -> dict[int | str, dict[str, Any]]:
    """A route's success answer, for ``responses=``: a wire type documented by its JSON schema
    (FastAPI's ``response_model=`` would need a pydantic twin of it)."""
    content = {"application/json": {"schema": wire_schema(model)}}
    return {status: {"description": description, "content": content}}


ERROR_REF: dict[str, Any] = {"$ref": REF_TEMPLATE.format(name="ErrorBody")}
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": ERROR_REF}}}
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
