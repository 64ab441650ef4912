"""``/openapi.json``: every route (the raw-ASGI ones from their table, ``api/routes.py``), the
credentials each accepts in this server's auth mode, and every status it can answer, each error
with the one error body. Bodies are documented from the wire types' JSON schemas (``wire.py``)."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from hubbub.api.auth import REFRESH_COOKIE
from hubbub.api.openapi_text import ERROR_STATUSES
from hubbub.api.routes import ROUTES, WEBSOCKET, Access, RawRoute, Reply
from hubbub.api.schemas import ERROR_REF, REF_TEMPLATE, wire_schema
from hubbub.auth.identity import GUEST_COOKIE, SESSION_COOKIE
from hubbub.limits import ROOM_ID_PATTERN
from hubbub.models import Message
from hubbub.wire import DOCUMENTED, InviteOut

RETRY_AFTER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
# A stream refused while too many are starting at once (`server_busy`) says when to come back.
RETRY_AFTER_BUSY: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before opening the stream again: sent with "
        "`server_busy` (too many streams starting at once).",
        "required": False,
        "schema": {"type": "integer", "minimum": 1},
    }
}

_BODY_METHODS = frozenset({"post", "put", "patch", "delete"})


def _openapi_method(method: str) -> str:
    """A WebSocket is documented as the GET that opens it."""
    return "get" if method == WEBSOCKET else method.lower()


# Routes anyone may call: no credentials at all.
PUBLIC = frozenset(
    {"/healthz", "/readyz", "/metrics", "/auth/register", "/auth/login"}
    | {r.path for r in ROUTES if r.access is Access.PUBLIC}
)
# The server API: the application's own backend, with a server key (never a user's credentials).
SERVER_API = "/server/"
# The GETs that open a stream: the only ones a `?ticket=` authenticates.
STREAMS = frozenset(r.path for r in ROUTES if r.access is Access.STREAM)
# A WebSocket answers nothing but its handshake: no JSON errors to document.
WEBSOCKETS = frozenset(r.path for r in ROUTES if r.method == WEBSOCKET)
# Where `429` can come from besides a body: send limits, failed sign-ins, streams per user.
RATE_LIMITED = frozenset(
    {
        ("post", "/chat/room/{room_id}/files"),
        ("post", "/auth/login"),
        ("post", "/auth/register"),
        *((_openapi_method(r.method), r.path) for r in ROUTES if r.rate_limited),
    }
)


def security_schemes(auth: str, *, metrics_token: bool = False) -> dict[str, Any]:
    """How a caller proves who they are, in this server's auth mode."""
    schemes: dict[str, Any] = {
        "sessionCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": SESSION_COOKIE,
            "description": "The HttpOnly session cookie set by `POST /auth/login`.",
        },
        "refreshCookie": {
            "type": "apiKey",
            "in": "cookie",
            "name": REFRESH_COOKIE,
            "description": "The refresh cookie (path `/auth`) set by `POST /auth/login`; "
            "`refresh_token` in the body does the same.",
        },
    }
    if auth == "trust":
        schemes.update(
            {
                "userIdHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "User-ID",
                    "description": "Trust mode (local development): the caller is whoever "
                    "this names (1-64 of letters, digits and `_.@:~-`; else 400 "
                    "`invalid_user_id`), created on first use.",
                },
                "userIdQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "user_id",
                    "description": "Trust mode: the same as `User-ID`, as a query parameter "
                    "(or a `user_id` body field).",
                },
                "guestCookie": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": GUEST_COOKIE,
                    "description": "Trust mode: the guest identity the server sets on a "
                    "request that names nobody.",
                },
            }
        )
    else:
        schemes.update(
            {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token from `POST /auth/login` or "
                    "`/auth/refresh` (HS256 with the server's secret, or a key of "
                    "`--jwt-public-key`; `sub` = user id, `exp` required).",
                },
                "ticket": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "ticket",
                    "description": "A one-time ticket from `POST /auth/ticket`: opens one "
                    "stream (`EventSource` and WebSocket cannot send headers), once, within "
                    "its lifetime. Anywhere else it is 401.",
                },
            }
        )
    schemes["serverKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The server API (`/server/*`), for the application's own backend: "
        "`Authorization: Bearer <server key>`, a key of `--server-key` (several "
        "comma-separated keys are all accepted while one is rotated). None is 401; a user's "
        "token, an old key, or any key while the server API is off is 403.",
    }
    if metrics_token:
        schemes["metricsToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "`--metrics-token`: required by `GET /metrics` when set.",
        }
    return schemes


def operation_security(
    auth: str, method: str, path: str, *, metrics_token: bool = False
) -> list[dict[str, list[str]]]:
    """The credentials an operation accepts (any one entry; `{}`: none needed)."""
    if path == "/metrics" and metrics_token:
        return [{"metricsToken": []}]
    if path in PUBLIC:
        return []
    if path.startswith(SERVER_API):
        return [{"serverKey": []}]
    trust = auth == "trust"
    if path == "/auth/refresh":
        return [{"refreshCookie": []}, {}]  # or refresh_token in the body
    if path == "/auth/logout":
        signed_in: list[dict[str, list[str]]] = [{"sessionCookie": []}]
        if not trust:
            signed_in.insert(0, {"bearerAuth": []})
        return [{"refreshCookie": []}, *signed_in, {}]  # or refresh_token in the body
    if trust:
        # Nobody named: a guest identity is created (and set as a cookie).
        return [
            {"userIdHeader": []},
            {"userIdQuery": []},
            {"sessionCookie": []},
            {"guestCookie": []},
            {},
        ]
    found: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"sessionCookie": []}]
    if method == "get" and path in STREAMS:
        found.append({"ticket": []})
    return found


def error_response(
    status: int, description: str | None = None, *, stream: bool = False
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description or ERROR_STATUSES[status],
        "content": {"application/json": {"schema": dict(ERROR_REF)}},
    }
    if status == 429:
        response["headers"] = dict(RETRY_AFTER)
    elif status == 503 and stream:
        response["headers"] = dict(RETRY_AFTER_BUSY)
    return response


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _status_object(value: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": [value]}},
    }


def _reply(reply: Reply) -> dict[str, Any]:
    if reply.model is None and reply.schema is None:
        return {"description": reply.description}
    schema = dict(reply.schema) if reply.schema is not None else wire_schema(reply.model)
    return {"description": reply.description, "content": {reply.media_type: {"schema": schema}}}


def _operation(route: RawRoute) -> dict[str, Any]:
    op: dict[str, Any] = {
        "tags": list(route.tags),
        "summary": route.summary,
        "description": route.description,
        "operationId": route.operation_id,
    }
    if route.parameters:
        op["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required,
                "schema": dict(p.schema),
                **({"description": p.description} if p.description is not None else {}),
            }
            for p in route.parameters
        ]
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": wire_schema(route.body)}},
        }
    op["responses"] = {
        **{str(status): _reply(reply) for status, reply in route.replies.items()},
        **{str(status): error_response(status, text) for status, text in route.errors.items()},
    }
    return op


def raw_paths() -> dict[str, Any]:
    """The raw-ASGI routes (``api/routes.py``), which FastAPI never sees."""
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[_openapi_method(route.method)] = _operation(route)
    return paths


# Success answers FastAPI cannot infer from the handlers (they return ``Response`` objects).
EXTRA_SUCCESS: dict[tuple[str, str], dict[str, Any]] = {
    ("get", "/healthz"): {"200": _json(_status_object("ok"), "the process is up")},
    ("get", "/readyz"): {"200": _json(_status_object("ready"), "the store and broker answer")},
    ("get", "/metrics"): {
        "200": {
            "description": "Prometheus text format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
    ("post", "/auth/logout"): {"200": _json(_status_object("logged_out"), "the session ended")},
    ("post", "/chat/room/{room_id}/members"): {
        "200": _json(wire_schema(InviteOut), "already a member")
    },
    ("post", "/chat/messages/{message_id}/reactions"): {
        "200": _json(wire_schema(Message), "you had already reacted so: the message")
    },
}


def _error_statuses(auth: str, method: str, path: str, op: dict[str, Any]) -> set[int]:
    """Every error an operation can answer, whatever the route's own code says."""
    found = {int(s) for s in op.get("responses", {}) if s.isdigit() and int(s) >= 400}
    if path in WEBSOCKETS:
        return found
    if path not in ("/healthz", "/metrics"):
        found.add(503)
    if method in _BODY_METHODS:
        # Any body, even to a route that takes none, is checked before the route runs; and a
        # change from another site that carries our cookies is refused.
        found.update({400, 403, 413, 415})
    if auth == "trust":
        found.update({403, 421})
    if path not in PUBLIC:
        found.update({400, 401, 403})  # bad credentials; `user_id` naming someone else
    if "{" in path:
        found.add(404)
    if (method, path) in RATE_LIMITED:
        found.add(429)
    if path == "/metrics":
        found.add(401)  # when --metrics-token is set
    return found


def _describe_errors(auth: str, method: str, path: str, op: dict[str, Any]) -> None:
    responses = op.setdefault("responses", {})
    for status in sorted(_error_statuses(auth, method, path, op)):
        given = responses.get(str(status), {}).get("description")
        generic = given in (None, "error", "Validation Error", "Unprocessable Content")
        responses[str(status)] = error_response(
            status, None if generic else given, stream=method == "get" and path in STREAMS
        )


def build_document(
    app: FastAPI, *, auth: str = "jwt", metrics_token: bool = False
) -> dict[str, Any]:
    """``/openapi.json`` for a server in ``auth`` mode (``jwt`` or ``trust``): every route, the
    credentials each accepts, and every status it can answer — every error with the one error
    body ``{"error": {"code", "message", "details"?}}`` (``api/errors.py``)."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {})
    models = components.setdefault("schemas", {})
    _, wire_models = msgspec.json.schema_components(DOCUMENTED, ref_template=REF_TEMPLATE)
    models.update(wire_models)
    # FastAPI's own 422 body is never sent: api/errors.py answers every failure with ErrorBody.
    for name in ("HTTPValidationError", "ValidationError"):
        models.pop(name, None)
    components["schemas"] = dict(sorted(models.items()))
    schema["paths"].update(raw_paths())
    room_id = {"type": "string", "pattern": f"^{ROOM_ID_PATTERN}$"}
    components["securitySchemes"] = security_schemes(auth, metrics_token=metrics_token)
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            for status, response in EXTRA_SUCCESS.get((method, path), {}).items():
                op["responses"][status] = response
            for param in op.get("parameters", []):
                if param["in"] == "path" and param["name"] == "room_id":
                    param["schema"] = {**param["schema"], **room_id}  # else 422 invalid_room_id
            _describe_errors(auth, method, path, op)
            op["security"] = operation_security(auth, method, path, metrics_token=metrics_token)
    schema["paths"] = dict(sorted(schema["paths"].items()))
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        runtime = getattr(app.state, "runtime", None)
        settings = getattr(runtime, "settings", None)
        auth = str(getattr(settings, "auth", "jwt"))
        token = bool(getattr(settings, "metrics_token", None))
        app.openapi_schema = build_document(app, auth=auth, metrics_token=token)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
