"""The one place where failures become ``{"error": {"code", "message", "details"?}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from hubbub.encoding import to_json
from hubbub.errors import BadRequest, HubbubError, Invalid, Unavailable

log = logging.getLogger("hubbub.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(error: HubbubError) -> Response:
    response = Response(
        to_json(error.body()),
        status_code=error.status,
        media_type="application/json; charset=utf-8",
    )
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        response.headers["retry-after"] = str(retry_after)
    return response


def _field_errors(errors: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in errors
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(HubbubError)
    async def _hubbub(_: Request, exc: HubbubError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(BadRequest("the body is not valid JSON", code="malformed_json"))
        details = _field_errors(errors)
        if details and all(d["type"] == "missing" for d in details):
            missing = ", ".join(d["loc"][-1] for d in details)
            return error_response(
                Invalid(f"missing field(s): {missing}", code="missing_field", details=details)
            )
        first = details[0] if details else {"loc": [], "msg": "invalid"}
        where = ".".join(first["loc"][1:]) or "request"
        return error_response(
            Invalid(f"{where}: {first['msg']}", code="invalid_field", details=details)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            code = "malformed_json"  # e.g. a body that is not UTF-8
        error = HubbubError(str(exc.detail), code=code)
        error.status = exc.status_code
        return error_response(error)

    @app.exception_handler(OperationalError)
    @app.exception_handler(DBAPIError)
    async def _db(_: Request, exc: Exception) -> Response:
        log.error("store error: %s", exc)
        return error_response(
            Unavailable("the store is unavailable; try again", code="store_unavailable")
        )
