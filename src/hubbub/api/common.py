"""What every FastAPI route shares: the runtime, the caller's identity, msgspec responses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from hubbub.auth.identity import Credentials, Identity
from hubbub.encoding import to_json
from hubbub.runtime import Runtime


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def request_credentials(request: Request, body_user_id: str | None = None) -> Credentials:
    q = request.query_params
    return Credentials(
        authorization=request.headers.get("authorization"),
        cookies=request.cookies,
        ticket=q.get("ticket") or None,
        header_user_id=request.headers.get("user-id") or None,
        query_user_id=q.get("user_id") or None,
        body_user_id=body_user_id,
        secure=request.url.scheme == "https",
    )


async def current_identity(request: Request) -> Identity:
    who = await runtime(request).auth.identify(request_credentials(request))
    if who.set_cookie:
        request.state.set_cookie = who.set_cookie
    return who


Caller = Annotated[Identity, Depends(current_identity)]
Rt = Annotated[Runtime, Depends(runtime)]


def respond(
    request: Request, data: Any, status: int = 200, cookies: list[str] | None = None
) -> Response:
    """Encode with msgspec (structs included) and carry any cookie the request earned."""
    response = Response(
        to_json(data), status_code=status, media_type="application/json; charset=utf-8"
    )
    guest = getattr(request.state, "set_cookie", None)
    for value in [guest, *(cookies or [])]:
        if value:
            response.headers.append("set-cookie", value)
    return response
