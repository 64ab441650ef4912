"""The server API client: what your own backend calls with a server key
(``Authorization: Bearer <server key>``; ``hubbub serve --server-key``)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import msgspec

from hubbub.client import backoff
from hubbub.client.aio import DEFAULT_URL
from hubbub.client.errors import HubbubError, error_from
from hubbub.client.models import Member, Message, Notification, User

__all__ = ["AsyncServerClient"]


class AsyncServerClient:
    """Post as any user or as ``system``, notify users, broadcast, provision users and
    memberships. Every call fails with ``HubbubError`` (401 no key, 403 a wrong key)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        server_key: str = "",
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {server_key}"},
        )

    async def __aenter__(self) -> AsyncServerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, body: Any = None) -> httpx.Response:
        r = await self._http.request(method, path, json=body)
        if r.status_code >= 400:
            raise error_from(r)
        return r

    async def post_message(
        self,
        room_id: str,
        text: str,
        *,
        user_id: str | None = None,
        client_msg_id: str | None = None,
        retries: int = 5,
    ) -> Message:
        """As ``user_id`` (a member), or a ``system`` message when ``None``; retried like
        ``AsyncHubbub.send`` with one ``client_msg_id``, so never stored twice."""
        body: dict[str, Any] = {
            "message": text,
            "client_msg_id": client_msg_id or uuid.uuid4().hex,
        }
        if user_id is not None:
            body["user_id"] = user_id
        attempt = 0
        while True:
            try:
                r = await self._call("POST", f"/server/rooms/{room_id}/messages", body)
                return msgspec.convert(r.json()["message"], Message)
            except httpx.TransportError as exc:
                if attempt >= retries:
                    raise HubbubError(0, "unreachable", f"{self.base_url}: {exc!r}") from exc
                wait = backoff.delay(attempt)
            except HubbubError as exc:
                if exc.status not in backoff.RETRYABLE or attempt >= retries:
                    raise
                wait = exc.retry_after or backoff.delay(attempt)
            attempt += 1
            await asyncio.sleep(wait)

    async def notify(self, user_id: str, event: str, data: Any = None) -> Notification:
        """Stored and delivered as ``notification`` on the user's streams (replayed on
        resume)."""
        r = await self._call(
            "POST", f"/server/users/{user_id}/notifications", {"event": event, "data": data}
        )
        return msgspec.convert(r.json()["notification"], Notification)

    async def broadcast(self, room_id: str, event: str, data: Any = None) -> None:
        """Live only, to everyone subscribed to the room now, as ``event: <event>``."""
        await self._call(
            "POST", f"/server/rooms/{room_id}/broadcast", {"event": event, "data": data}
        )

    async def provision_user(self, user_id: str, username: str | None = None) -> User:
        """Create (or rename) a user from your own records."""
        body = {"user_id": user_id, "username": username or user_id}
        return msgspec.convert((await self._call("POST", "/server/users", body)).json(), User)

    async def delete_user(self, user_id: str) -> None:
        """Out of every room, every session and stream ended, the account gone; their
        messages stay."""
        await self._call("DELETE", f"/server/users/{user_id}")

    async def add_member(self, room_id: str, user_id: str) -> Member:
        r = await self._call("POST", f"/server/rooms/{room_id}/members", {"user_id": user_id})
        return msgspec.convert(r.json(), Member)

    async def remove_member(self, room_id: str, user_id: str) -> None:
        await self._call("DELETE", f"/server/rooms/{room_id}/members/{user_id}")
