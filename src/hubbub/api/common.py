"""What every FastAPI route shares: the caller's identity, msgspec responses, and the parts of
the runtime a route may ask for.

Each route names the few parts it uses (``RoomsDep``, ``SettingsDep``, …) rather than taking
the whole runtime, so its signature says what it can touch.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response

from hubbub.auth.accounts import Accounts
from hubbub.auth.identity import Authenticator, Credentials, Identity
from hubbub.broker.base import Broker
from hubbub.chat.activity import Activity
from hubbub.chat.files import FileRules
from hubbub.chat.messages import MessageRules
from hubbub.chat.rooms import RoomRules
from hubbub.config import Settings
from hubbub.encoding import to_json
from hubbub.files.base import FileStore
from hubbub.hub import Hub
from hubbub.metrics import Metrics
from hubbub.ratelimit import SendLimiter
from hubbub.runtime import Runtime
from hubbub.store.base import Store


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


def _rooms(request: Request) -> RoomRules:
    return runtime(request).rooms


def _messages(request: Request) -> MessageRules:
    return runtime(request).messages


def _activity(request: Request) -> Activity:
    return runtime(request).activity


def _file_rules(request: Request) -> FileRules:
    return runtime(request).file_rules


def _file_store(request: Request) -> FileStore:
    return runtime(request).files


def _accounts(request: Request) -> Accounts:
    return runtime(request).accounts


def _authenticator(request: Request) -> Authenticator:
    return runtime(request).auth


def _limiter(request: Request) -> SendLimiter:
    return runtime(request).limiter


def _settings(request: Request) -> Settings:
    return runtime(request).settings


def _hub(request: Request) -> Hub:
    return runtime(request).hub


def _store(request: Request) -> Store:
    return runtime(request).store


def _broker(request: Request) -> Broker:
    return runtime(request).broker


def _metrics(request: Request) -> Metrics:
    return runtime(request).metrics


Caller = Annotated[Identity, Depends(current_identity)]
RoomsDep = Annotated[RoomRules, Depends(_rooms)]
MessagesDep = Annotated[MessageRules, Depends(_messages)]
ActivityDep = Annotated[Activity, Depends(_activity)]
FileRulesDep = Annotated[FileRules, Depends(_file_rules)]
FileStoreDep = Annotated[FileStore, Depends(_file_store)]
AccountsDep = Annotated[Accounts, Depends(_accounts)]
AuthDep = Annotated[Authenticator, Depends(_authenticator)]
LimiterDep = Annotated[SendLimiter, Depends(_limiter)]
SettingsDep = Annotated[Settings, Depends(_settings)]
HubDep = Annotated[Hub, Depends(_hub)]
StoreDep = Annotated[Store, Depends(_store)]
BrokerDep = Annotated[Broker, Depends(_broker)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]


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
