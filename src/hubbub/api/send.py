"""``POST /chat/messages``, the hottest request route, as raw ASGI decoding ``wire.SendBody``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from hubbub import tracing
from hubbub.api.raw import (
    Receive,
    Reply,
    Scope,
    Send,
    check_json_type,
    credentials,
    decode_json,
    error_reply,
    query,
    read_body,
    send_error,
    send_reply,
)
from hubbub.errors import HubbubError, TooLarge
from hubbub.wire import SendBody

if TYPE_CHECKING:
    from hubbub.auth.identity import Authenticator
    from hubbub.chat.writer import Writer
    from hubbub.ratelimit import SendLimiter
    from hubbub.runtime import Runtime


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
    """``POST /chat/messages`` with the four things it uses, named (not the whole runtime).

    ``answer`` is the route without I/O (a request's scope and whole body in, a :class:`Reply`
    out): the ASGI adapter below and the HTTP protocol's fast lane both write what it returns."""

    auth: Authenticator
    limiter: SendLimiter
    writer: Writer
    max_body_bytes: int

    @classmethod
    def of(cls, rt: Runtime) -> SendRoute:
        return cls(rt.auth, rt.limiter, rt.writer, rt.settings.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            check_json_type(scope)  # 415 before a large body is read
            body = await read_body(receive, self.max_body_bytes)
        except HubbubError as exc:
            await send_error(send, exc)
            return
        await send_reply(send, await self.answer(scope, body))

    async def answer(self, scope: Scope, body: bytes, *, too_large: bool = False) -> Reply:
        """The reply to one send. ``too_large``: the body passed ``max_body_bytes`` (and was
        not kept), which is a 413 once the content type has been checked."""
        if tracing.TRACER is not None:
            return await self._traced(scope, body, too_large)
        return await self._answer(scope, body, too_large)

    async def _traced(self, scope: Scope, body: bytes, too_large: bool) -> Reply:
        """The send in a ``send`` span, a child of the request's ``traceparent``."""
        with tracing.send_span(scope["headers"]) as span:
            reply = await self._answer(scope, body, too_large)
            span.set_attribute("http.response.status_code", reply.status)
            return reply

    async def _answer(self, scope: Scope, body: bytes, too_large: bool) -> Reply:
        try:
            check_json_type(scope)
            if too_large:
                raise TooLarge(
                    f"the request body is larger than {self.max_body_bytes} bytes",
                    code="body_too_large",
                )
            decoded = decode_send_body(body)
            who = await self.auth.identify(
                credentials(scope, query(scope), decoded.user_id), ensure_user=False
            )
            await self.limiter.check(who.user_id)
            sent = await self.writer.send(
                who,
                decoded.room_id,
                decoded.message,
                timestamp=decoded.timestamp,
                client_msg_id=decoded.client_msg_id,
            )
        except HubbubError as exc:
            return error_reply(exc)
        extra = [(b"set-cookie", who.set_cookie.encode("latin-1"))] if who.set_cookie else None
        pad = b" " * (SEQ_DIGITS - len(str(sent.message.seq)))
        payload = b'{"status":"sent","message":' + sent.event.data + pad + b"}"
        return Reply(201 if sent.created else 200, payload, extra)
