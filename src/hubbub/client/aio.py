"""The async client: every user-facing route, ``send()`` that can be retried safely, and
``stream()`` that resumes by itself.

One ``httpx.AsyncClient`` per ``AsyncHubbub`` (connection reuse); auth is jwt (an access token,
refreshed once on a 401 when a refresh token is known) or trust (a ``User-ID`` header)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec

from hubbub.client import backoff
from hubbub.client.errors import AuthError, HubbubError, error_from
from hubbub.client.events import Connected, Event, parse_event
from hubbub.client.models import Member, Message, Room, SearchPage, User
from hubbub.client.sse import SSEError, SSEParser

__all__ = ["DEFAULT_URL", "AsyncHubbub", "Tokens"]

DEFAULT_URL = "http://127.0.0.1:8000"
T = TypeVar("T")


class Tokens(msgspec.Struct):
    """What a jwt login hands out; refresh tokens are single-use, so keep the newest."""

    access_token: str
    refresh_token: str
    user_id: str
    username: str


def _decode(response: httpx.Response, kind: type[T]) -> T:
    return msgspec.json.decode(response.content, type=kind)


class AsyncHubbub:
    """A Hubbub user. ``token``/``refresh_token`` for jwt mode, ``user_id`` for trust mode;
    ``on_tokens`` is called with the new pair after each refresh (store it: the old refresh
    token no longer works)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        refresh_token: str | None = None,
        user_id: str | None = None,
        on_tokens: Callable[[Tokens], None] | None = None,
        timeout: float = 30.0,
        idle_timeout: float = 60.0,
        max_backoff: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.refresh_token = refresh_token
        self.user_id = user_id
        self.on_tokens = on_tokens
        self.idle_timeout = idle_timeout
        self.max_backoff = max_backoff
        #: the ``id`` of the last event ``stream()`` yielded or passed: where it resumes
        self.last_event_id: str | None = None
        self._refresh_lock = asyncio.Lock()
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, transport=transport, follow_redirects=False
        )

    # lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncHubbub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @classmethod
    async def login(cls, base_url: str, username: str, password: str, **kw: Any) -> AsyncHubbub:
        """A client signed in with a password (jwt mode)."""
        client = cls(base_url, **kw)
        try:
            await client.sign_in(username, password)
        except BaseException:
            await client.aclose()
            raise
        return client

    # auth ---------------------------------------------------------------------------------

    async def sign_in(self, username: str, password: str) -> Tokens:
        r = await self._send("POST", "/auth/login", {"username": username, "password": password})
        return self._take_tokens(r)

    async def register(self, username: str, password: str) -> User:
        r = await self._send("POST", "/auth/register", {"username": username, "password": password})
        body = r.json()
        return msgspec.convert(body.get("user", body), User)

    async def refresh(self) -> Tokens:
        """Trade the refresh token for a new pair (401 ``AuthError`` if it is spent or its
        session ended)."""
        if self.refresh_token is None:
            raise AuthError(401, "no_refresh_token", "no refresh token to renew the session with")
        r = await self._http.post("/auth/refresh", json={"refresh_token": self.refresh_token})
        if r.status_code != 200:
            raise error_from(r)
        return self._take_tokens(r)

    async def logout(self) -> None:
        await self._request("POST", "/auth/logout", json={"refresh_token": self.refresh_token})
        self.token = self.refresh_token = None

    async def me(self) -> User:
        return _decode(await self._request("GET", "/auth/me"), User)

    def _take_tokens(self, r: httpx.Response) -> Tokens:
        body = r.json()
        tokens = Tokens(
            access_token=body["access_token"],
            refresh_token=body["refresh_token"],
            user_id=body["user"]["id"],
            username=body["user"]["username"],
        )
        self.token, self.refresh_token = tokens.access_token, tokens.refresh_token
        self.user_id = tokens.user_id
        if self.on_tokens is not None:
            self.on_tokens(tokens)
        return tokens

    def _headers(self) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token}"}
        if self.user_id is not None:
            return {"User-ID": self.user_id}
        return {}

    async def _refresh_after_401(self, used_token: str | None) -> bool:
        """Refresh once for every request that failed with the same token; ``False`` when
        there is nothing to refresh with."""
        if self.refresh_token is None:
            return False
        async with self._refresh_lock:
            if self.token != used_token:  # another request refreshed meanwhile
                return True
            await self.refresh()
            return True

    # requests -----------------------------------------------------------------------------

    async def _send(self, method: str, path: str, body: Any = None) -> httpx.Response:
        r = await self._http.request(method, path, json=body)
        if r.status_code >= 400:
            raise error_from(r)
        return r

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        files: Any = None,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        token = self.token
        r = await self._http.request(
            method, path, json=json, params=params, files=files, data=data, headers=self._headers()
        )
        if r.status_code == 401 and await self._refresh_after_401(token):
            r = await self._http.request(
                method, path, json=json, params=params, files=files, data=data,
                headers=self._headers(),
            )  # fmt: skip
        if r.status_code >= 400:
            raise error_from(r)
        return r

    # messages -----------------------------------------------------------------------------

    async def send(
        self,
        room_id: str,
        text: str,
        *,
        client_msg_id: str | None = None,
        timestamp: Any = None,
        retries: int = 5,
    ) -> Message:
        """Send, retrying lost connections, 429 and 5xx with the same ``client_msg_id`` (made
        up when not given), so a retry of a send the server did store returns that message
        instead of storing it twice."""
        body: dict[str, Any] = {
            "room_id": room_id,
            "message": text,
            "client_msg_id": client_msg_id or uuid.uuid4().hex,
        }
        if timestamp is not None:
            body["timestamp"] = timestamp
        r = await self._retrying(
            retries, lambda: self._request("POST", "/chat/messages", json=body)
        )
        return msgspec.convert(r.json()["message"], Message)

    async def _retrying(self, retries: int, call: Callable[[], Any]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response: httpx.Response = await call()
                return response
            except httpx.TransportError as exc:
                if attempt >= retries:
                    raise HubbubError(0, "unreachable", f"{self.base_url}: {exc!r}") from exc
                wait = backoff.delay(attempt, cap=self.max_backoff)
            except HubbubError as exc:
                if exc.status not in backoff.RETRYABLE or attempt >= retries:
                    raise
                wait = exc.retry_after or backoff.delay(attempt, cap=self.max_backoff)
            attempt += 1
            await asyncio.sleep(wait)

    async def history(
        self,
        room_id: str,
        *,
        limit: int = 50,
        before: int | None = None,
        after: int | None = None,
    ) -> list[Message]:
        """Oldest first: the newest ``limit``, or a page before/after a ``seq``."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        if after is not None:
            params["after"] = after
        r = await self._request("GET", f"/chat/room/{room_id}/history", params=params)
        return _decode(r, list[Message])

    async def edit(self, message_id: str, text: str) -> Message:
        r = await self._request("PATCH", f"/chat/messages/{message_id}", json={"message": text})
        return _decode(r, Message)

    async def delete(self, message_id: str) -> Message:
        return _decode(await self._request("DELETE", f"/chat/messages/{message_id}"), Message)

    async def react(self, message_id: str, reaction: str) -> None:
        await self._request(
            "POST", f"/chat/messages/{message_id}/reactions", json={"reaction": reaction}
        )

    async def unreact(self, message_id: str, reaction: str) -> None:
        await self._request("DELETE", f"/chat/messages/{message_id}/reactions/{reaction}")

    async def search(
        self, query: str, *, room_id: str | None = None, limit: int = 20, before: str | None = None
    ) -> SearchPage:
        """Best match first; pass ``next_before`` of a page to get the next."""
        params: dict[str, Any] = {"q": query, "limit": limit}
        if room_id is not None:
            params["room_id"] = room_id
        if before is not None:
            params["before"] = before
        return _decode(await self._request("GET", "/chat/search", params=params), SearchPage)

    # files --------------------------------------------------------------------------------

    async def upload(
        self,
        room_id: str,
        file: str | Path | bytes,
        *,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
        caption: str | None = None,
    ) -> Message:
        """Upload a file (a path, or bytes with ``filename``) as a ``type: "file"`` message."""
        if isinstance(file, bytes):
            content, name = file, filename or "file"
        else:
            path = Path(file)
            content = await asyncio.to_thread(path.read_bytes)
            name = filename or path.name
        r = await self._request(
            "POST",
            f"/chat/room/{room_id}/files",
            files={"file": (name, content, content_type)},
            data={"message": caption} if caption is not None else None,
        )
        return msgspec.convert(r.json()["message"], Message)

    async def download(self, message_or_url: Message | str) -> bytes:
        """The bytes of a file message (or of its ``file.url``)."""
        if isinstance(message_or_url, Message):
            if message_or_url.file is None:
                raise ValueError("this message has no file")
            url = message_or_url.file.url
        else:
            url = message_or_url
        return (await self._request("GET", url)).content

    # rooms --------------------------------------------------------------------------------

    async def rooms(self) -> list[Room]:
        """Mine (with unread counts) and the public ones."""
        r = await self._request("GET", "/chat/rooms")
        return msgspec.convert(r.json()["rooms"], list[Room])

    async def room(self, room_id: str) -> Room:
        return _decode(await self._request("GET", f"/chat/room/{room_id}"), Room)

    async def create_room(self, name: str, visibility: str = "public") -> Room:
        r = await self._request(
            "POST", "/chat/rooms", json={"name": name, "visibility": visibility}
        )
        return _decode(r, Room)

    async def join(self, room_id: str) -> Room:
        r = await self._request("POST", f"/chat/room/{room_id}/join")
        return msgspec.convert(r.json()["room"], Room)

    async def leave(self, room_id: str) -> None:
        await self._request("POST", f"/chat/room/{room_id}/leave")

    async def members(self, room_id: str) -> list[Member]:
        r = await self._request("GET", f"/chat/room/{room_id}/members")
        return msgspec.convert(r.json()["members"], list[Member])

    async def invite(
        self, room_id: str, *, user_id: str | None = None, username: str | None = None
    ) -> Member:
        body = {"user_id": user_id} if user_id is not None else {"username": username}
        r = await self._request("POST", f"/chat/room/{room_id}/members", json=body)
        return msgspec.convert(r.json()["member"], Member)

    async def mark_read(self, room_id: str, seq: int) -> int:
        """Move your read pointer; the unread count after."""
        r = await self._request("POST", f"/chat/room/{room_id}/read", json={"seq": seq})
        return int(r.json()["unread"])

    async def typing(self, room_id: str, is_typing: bool = True) -> None:
        await self._request("POST", f"/chat/room/{room_id}/typing", json={"is_typing": is_typing})

    async def set_presence(self, status: str) -> None:
        await self._request("PUT", "/chat/presence", json={"status": status})

    # the stream ---------------------------------------------------------------------------

    async def stream(self, last_event_id: str | None = None) -> AsyncGenerator[Event, None]:
        """Every event of ``GET /chat/events`` (all your rooms and your personal events), for
        as long as you iterate. A dropped connection, a server restart or a garbled stream is
        reconnected with back-off and jitter and resumed from the last ``id`` seen, so each
        stored change arrives exactly once and in order (``Connected`` comes again after each
        reconnect). Without ``last_event_id`` it starts live; with one, it replays what came
        after it first. A 401 refreshes the token once (jwt), else raises ``AuthError``."""
        cursor = last_event_id or self.last_event_id
        attempt = 0
        refreshed = False
        retry_ms: int | None = None
        timeout = httpx.Timeout(30.0, read=self.idle_timeout)
        while True:
            parser = SSEParser()
            headers = {**self._headers(), "Accept": "text/event-stream"}
            if cursor is not None:
                headers["Last-Event-ID"] = cursor
            token = self.token
            try:
                async with self._http.stream(
                    "GET", "/chat/events", headers=headers, timeout=timeout
                ) as r:
                    if r.status_code == 401:
                        await r.aread()
                        if refreshed or not await self._refresh_after_401(token):
                            raise error_from(r)
                        refreshed = True
                        continue
                    if r.status_code != 200:
                        await r.aread()
                        exc = error_from(r)
                        if r.status_code not in backoff.RETRYABLE:
                            raise exc
                        raise _Retry(exc.retry_after)
                    async for chunk in r.aiter_bytes():
                        for sse in parser.feed(chunk):
                            if sse.id is not None:
                                cursor = self.last_event_id = sse.id
                            if not sse.event:
                                continue
                            event = parse_event(sse)
                            if isinstance(event, Connected):
                                attempt, refreshed = 0, False
                            yield event
                retry_ms = parser.retry or retry_ms
                wait = (retry_ms / 1000 if retry_ms else 1.0) * backoff.delay(attempt, 1.0, 1.0)
            except (httpx.TransportError, SSEError):
                retry_ms = parser.retry or retry_ms
                base = min(retry_ms / 1000, 1.0) if retry_ms else 0.5
                wait = backoff.delay(attempt, base, self.max_backoff)
            except _Retry as hint:
                wait = hint.after or backoff.delay(attempt, 1.0, self.max_backoff)
            attempt += 1
            await asyncio.sleep(wait)


class _Retry(Exception):
    def __init__(self, after: float | None) -> None:
        self.after = after
