"""OpenAPI entries for the raw-ASGI routes, so ``/openapi.json`` describes the whole API."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hubbub.api.schemas import ErrorBody, MessageOut, SendIn, SendOut

STREAM_DESCRIPTION = """\
Server-Sent Events for one room (seed route). Frames:

* `retry: <ms>` then `event: connected` with `{"status": "ok", "room_id", "user_id"}` first;
* each chat message as `id: <seq>` + `data: <message JSON>` with **no** `event:` line, so
  `EventSource.onmessage` receives it;
* named events: `message_edited`, `message_deleted` (data: the message), `member_joined`,
  `member_left` (data: `{"room_id", "user_id", "username"}`), `typing` (seed TypingEvent
  `{"user_id", "room_id", "is_typing", "username"}`; not sent to the typist's own streams),
  `presence` (seed PresenceEvent `{"user_id", "status": "online"|"away"|"offline"}`),
  `reaction` (seed ReactionEvent `{"message_id", "user_id", "reaction", "room_id", "seq",
  "action": "added"|"removed"}`), `read` (`{"room_id", "user_id", "seq"}`), `reset`
  (`{"room_id", "oldest_seq"}`, right after `connected` when the cursor is older than what the
  server keeps);
* `: ping` comment lines at least every 15 s.

A fresh stream is live only (load history with the history route). With `Last-Event-ID`
(header, sent by browsers on reconnect) or `?last_event_id=`, every message after that seq is
replayed from storage, then the stream goes live: no gap, no duplicate. A client that stops
reading is disconnected once its buffer passes the bound; it resumes the same way.
Headers: `Content-Type: text/event-stream`, `Cache-Control: no-cache, no-transform`,
`X-Accel-Buffering: no`. In trust mode, subscribing creates and joins a public room.
"""

SEND_DESCRIPTION = """\
Send a message (seed route). `201` only after the message is durably stored; a repeat of a
`client_msg_id` by the same user returns the original with `200` (same `room_id` and
`message`) or `409 idempotency_conflict` (different). Empty or whitespace-only → 422
`empty_message`; over the limit (4000 code points) → 422 `message_too_long`; unknown room → 404;
not a member → 403 `not_a_member`; over the rate limit → 429 with `Retry-After`.
"""


def _error_responses(*codes: int) -> dict[str, Any]:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    return {str(c): {"description": "error", **ref} for c in codes}


def _schema(model: Any) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ErrorBody, MessageOut, SendIn, SendOut):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in model_schema.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = model_schema
        auth_params = [
            {
                "name": "User-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "trust mode identity (seed)",
            },
        ]
        schema["paths"]["/chat/messages"] = {
            "post": {
                "tags": ["messages"],
                "summary": "Send a message",
                "description": SEND_DESCRIPTION,
                "operationId": "send_message",
                "parameters": auth_params,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _schema(SendIn)}},
                },
                "responses": {
                    "201": {
                        "description": "stored",
                        "content": {"application/json": {"schema": _schema(SendOut)}},
                    },
                    "200": {
                        "description": "repeat of a client_msg_id: the original",
                        "content": {"application/json": {"schema": _schema(SendOut)}},
                    },
                    **_error_responses(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
                },
            }
        }
        schema["paths"]["/chat/room/{room_id}/events"] = {
            "get": {
                "tags": ["streams"],
                "summary": "SSE stream of one room",
                "description": STREAM_DESCRIPTION,
                "operationId": "room_events",
                "parameters": [
                    {
                        "name": "room_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "user_id",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "seed; in jwt mode must be the caller",
                    },
                    {
                        "name": "last_event_id",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0},
                    },
                    {
                        "name": "ticket",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "one-time ticket from POST /auth/ticket",
                    },
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    *auth_params,
                ],
                "responses": {
                    "200": {
                        "description": "the event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    **_error_responses(400, 401, 403, 404, 503),
                },
            }
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
