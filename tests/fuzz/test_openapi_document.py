"""``/openapi.json`` tells the truth about errors and credentials (API.md "Conventions"), in
both auth modes — what lets schemathesis (``test_schemathesis.py``) hold the server to it.

Built in-process (``build_document``), no server: every error response is the one error body,
FastAPI's ``HTTPValidationError`` is gone, the security schemes are declared and applied per
operation, rate-limited routes document ``Retry-After``, streams are ``text/event-stream``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

from hubbub.api.auth import REFRESH_COOKIE
from hubbub.api.openapi import PUBLIC, STREAMS, build_document
from hubbub.app import create_app
from hubbub.auth.identity import GUEST_COOKIE, SESSION_COOKIE
from hubbub.config import Settings

ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
BODY_METHODS = {"post", "put", "patch", "delete"}


@cache
def document(auth: str, *, metrics_token: bool = False) -> dict[str, Any]:
    app = create_app(Settings(auth=auth))  # type: ignore[arg-type]
    doc = build_document(app.api, auth=auth, metrics_token=metrics_token)
    json.dumps(doc)  # plain JSON
    return doc


@pytest.fixture(scope="module", params=["jwt", "trust"])
def doc(request: pytest.FixtureRequest) -> dict[str, Any]:
    return document(request.param)


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]


def test_no_fastapi_validation_error_anywhere(doc: dict[str, Any]) -> None:
    text = json.dumps(doc)
    assert "HTTPValidationError" not in text
    assert '"ValidationError"' not in text and "/ValidationError" not in text
    assert not {"HTTPValidationError", "ValidationError"} & set(doc["components"]["schemas"])


def test_every_error_response_is_the_error_body(doc: dict[str, Any]) -> None:
    seen = 0
    for method, path, op in operations(doc):
        for status, response in op["responses"].items():
            if int(status) >= 400:
                seen += 1
                assert response["content"] == ERROR_CONTENT, (method, path, status)
                assert response["description"], (method, path, status)
    assert seen > 200


def test_the_error_body_schema_is_the_one_api_errors_sends(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    body = schemas["ErrorBody"]
    assert body["required"] == ["error"]
    detail = schemas[body["properties"]["error"]["$ref"].rsplit("/", 1)[1]]
    assert set(detail["required"]) == {"code", "message"}
    assert set(detail["properties"]) == {"code", "message", "details"}


def test_rate_limits_document_retry_after(doc: dict[str, Any]) -> None:
    limited = {(m, p) for m, p, op in operations(doc) if "429" in op["responses"]}
    assert {
        ("post", "/chat/messages"),
        ("post", "/chat/room/{room_id}/files"),
        ("post", "/auth/login"),
        ("post", "/auth/register"),
        ("get", "/chat/events"),
        ("get", "/chat/room/{room_id}/events"),
        ("get", "/chat/room/{room_id}/poll"),
    } <= limited
    for method, path, op in operations(doc):
        if "429" in op["responses"]:
            header = op["responses"]["429"]["headers"]["Retry-After"]
            assert header["required"] is True, (method, path)
            assert header["schema"]["type"] == "integer"


def test_every_route_documents_the_errors_it_can_answer(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        statuses = set(op["responses"])
        if path in ("/chat/ws", "/ws/chat"):  # the WebSockets
            assert {"101", "404"} <= statuses
            continue
        if path not in ("/healthz", "/metrics"):
            assert "503" in statuses, (method, path)
        if method in BODY_METHODS:
            assert {"400", "403", "413", "415"} <= statuses, (method, path)
        if "{" in path:
            assert "404" in statuses, (method, path)
        if path not in PUBLIC:
            assert {"400", "401", "403"} <= statuses, (method, path)
        for param in op.get("parameters", []):
            if param["in"] == "query" and param["schema"].get("type") == "integer":
                assert "422" in statuses, (method, path, param["name"])
        successes = [s for s in statuses if s.startswith("2") or s == "101"]
        assert successes, (method, path)


def test_streams_are_event_streams(doc: dict[str, Any]) -> None:
    for path in ("/chat/events", "/chat/room/{room_id}/events"):
        content = doc["paths"][path]["get"]["responses"]["200"]["content"]
        assert set(content) == {"text/event-stream"}
        assert content["text/event-stream"]["schema"]["required"] == ["data"]
    poll = doc["paths"]["/chat/room/{room_id}/poll"]["get"]["responses"]["200"]["content"]
    assert set(poll) == {"application/json"}
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert set(metrics) == {"text/plain"}


def test_jwt_security_schemes() -> None:
    doc = document("jwt")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == schemes["bearerAuth"] | {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert (schemes["sessionCookie"]["in"], schemes["sessionCookie"]["name"]) == (
        "cookie",
        SESSION_COOKIE,
    )
    assert (schemes["refreshCookie"]["in"], schemes["refreshCookie"]["name"]) == (
        "cookie",
        REFRESH_COOKIE,
    )
    assert (schemes["ticket"]["in"], schemes["ticket"]["name"]) == ("query", "ticket")
    assert "userIdHeader" not in schemes  # trust mode only
    for method, path, op in operations(doc):
        security = op["security"]
        if path in PUBLIC:
            assert security == [], path
        elif path in ("/auth/refresh", "/auth/logout"):
            assert {"refreshCookie": []} in security and {} in security  # or a body token
        elif path.startswith("/server/"):
            assert security == [{"serverKey": []}], (method, path)
        else:
            assert {"bearerAuth": []} in security and {"sessionCookie": []} in security
            assert {} not in security, (method, path)
            assert ({"ticket": []} in security) == (method == "get" and path in STREAMS), path


def test_trust_security_schemes() -> None:
    doc = document("trust")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["userIdHeader"] == schemes["userIdHeader"] | {
        "type": "apiKey",
        "in": "header",
        "name": "User-ID",
    }
    assert (schemes["userIdQuery"]["in"], schemes["userIdQuery"]["name"]) == ("query", "user_id")
    assert (schemes["guestCookie"]["in"], schemes["guestCookie"]["name"]) == (
        "cookie",
        GUEST_COOKIE,
    )
    assert "bearerAuth" not in schemes and "ticket" not in schemes
    for method, path, op in operations(doc):
        if path in PUBLIC:
            assert op["security"] == [], path
        elif path.startswith("/server/"):
            assert op["security"] == [{"serverKey": []}], (method, path)
        elif path not in ("/auth/refresh", "/auth/logout"):
            assert {"userIdHeader": []} in op["security"], (method, path)
            assert {} in op["security"]  # nobody named: a guest
        assert "421" in op["responses"] or path in ("/chat/ws", "/ws/chat"), (method, path)


def test_the_server_api_takes_a_server_key_and_nothing_else(doc: dict[str, Any]) -> None:
    """``/server/*`` is for the application's backend: its own bearer scheme (``--server-key``),
    never a user's token, cookie or ``User-ID``; no other route accepts a server key."""
    scheme = doc["components"]["securitySchemes"]["serverKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "--server-key" in scheme["description"]
    server_ops = [(m, p, op) for m, p, op in operations(doc) if p.startswith("/server/")]
    assert len(server_ops) >= 7
    for method, path, op in server_ops:
        assert op["security"] == [{"serverKey": []}], (method, path)
        assert {"401", "403"} <= set(op["responses"]), (method, path)
    for method, path, op in operations(doc):
        if not path.startswith("/server/"):
            assert {"serverKey": []} not in op["security"], (method, path)


def test_every_security_requirement_names_a_declared_scheme(doc: dict[str, Any]) -> None:
    declared = set(doc["components"]["securitySchemes"])
    for method, path, op in operations(doc):
        for requirement in op["security"]:
            assert set(requirement) <= declared, (method, path, requirement)


def test_a_busy_stream_documents_retry_after(doc: dict[str, Any]) -> None:
    """``503 server_busy`` (too many streams starting) comes with ``Retry-After``; other 503s
    may not, so there it is optional."""
    for path in STREAMS:
        response = doc["paths"][path]["get"]["responses"]
        if path in ("/chat/ws", "/ws/chat"):
            continue
        header = response["503"]["headers"]["Retry-After"]
        assert header["required"] is False and header["schema"]["type"] == "integer", path
    assert "headers" not in doc["paths"]["/chat/rooms"]["get"]["responses"]["503"]


def test_metrics_token_is_declared_when_set() -> None:
    doc = document("jwt", metrics_token=True)
    assert doc["components"]["securitySchemes"]["metricsToken"]["scheme"] == "bearer"
    assert doc["paths"]["/metrics"]["get"]["security"] == [{"metricsToken": []}]
    assert "401" in doc["paths"]["/metrics"]["get"]["responses"]
    assert document("jwt")["paths"]["/metrics"]["get"]["security"] == []


def test_identity_is_no_longer_a_parameter(doc: dict[str, Any]) -> None:
    """``User-ID`` and ``ticket`` are security schemes, not per-route parameters."""
    for method, path, op in operations(doc):
        names = {p["name"] for p in op.get("parameters", [])}
        assert not {"User-ID", "ticket"} & names, (method, path)
