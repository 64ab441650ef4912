"""``POST /chat/messages``, the hottest request route, as raw ASGI with a msgspec schema."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from hubbub.api.raw import (
    Receive,
    Scope,
    Send,
    credentials,
    header,
    query,
    read_body,
    send_error,
    send_json,
)
from hubbub.errors import BadRequest, HubbubError, Invalid, UnsupportedMediaType
from hubbub.models import ClientTimestamp

if TYPE_CHECKING:
    from hubbub.runtime import Runtime


class SendBody(msgspec.Struct, forbid_unknown_fields=False):
    room_id: str
    message: str
    timestamp: ClientTimestamp = None
    client_msg_id: str | None = None
    user_id: str | None = None


_decoder = msgspec.json.Decoder(SendBody)


def decode_send_body(raw: bytes) -> SendBody:
    try:
        return _decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise Invalid(f"invalid message: {exc}", code="invalid_field") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from None


def check_json_type(scope: Scope) -> None:
    ctype = (header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType(
            "send JSON (Content-Type: application/json)", code="unsupported_media_type"
        )


async def post_message(rt: Runtime, scope: Scope, receive: Receive, send: Send) -> None:
    try:
        check_json_type(scope)
        body = decode_send_body(await read_body(receive, rt.settings.max_body_bytes))
        who = await rt.auth.identify(
            credentials(scope, query(scope), body.user_id), ensure_user=False
        )
        await rt.limiter.check(who.user_id)
        sent = await rt.service.send(
            who,
            body.room_id,
            body.message,
            timestamp=body.timestamp,
            client_msg_id=body.client_msg_id,
        )
    except HubbubError as exc:
        await send_error(send, exc)
        return
    extra = [(b"set-cookie", who.set_cookie.encode("latin-1"))] if who.set_cookie else None
    payload = b'{"status":"sent","message":' + sent.event.data + b"}"
    await send_json(send, 201 if sent.created else 200, payload, extra)
