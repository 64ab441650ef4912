"""The blocking clients: the async ones run on an event loop in a thread of their own, so
both behave the same (one implementation of retries and resume) and a sync program needs no
asyncio of its own."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from hubbub.client.aio import DEFAULT_URL, AsyncHubbub, Tokens
from hubbub.client.events import Event
from hubbub.client.models import Member, Message, Notification, Room, SearchPage, User
from hubbub.client.server_api import AsyncServerClient

__all__ = ["Hubbub", "ServerClient"]

T = TypeVar("T")


class _Loop:
    """One event loop in a daemon thread; ``run`` blocks until a coroutine is done there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C in the caller: stop the work, not only the wait
            raise

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


class Hubbub:
    """The blocking twin of ``AsyncHubbub``: same arguments, same methods, same errors."""

    def __init__(self, base_url: str = DEFAULT_URL, **kw: Any) -> None:
        self._loop = _Loop()
        self._a: AsyncHubbub = self._loop.run(_make(lambda: AsyncHubbub(base_url, **kw)))

    @classmethod
    def login(cls, base_url: str, username: str, password: str, **kw: Any) -> Hubbub:
        client = cls(base_url, **kw)
        try:
            client.sign_in(username, password)
        except BaseException:
            client.close()
            raise
        return client

    def __enter__(self) -> Hubbub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.run(self._a.aclose())
        self._loop.close()

    @property
    def aio(self) -> AsyncHubbub:
        """The async client underneath (its ``token``, ``user_id``, ``last_event_id``)."""
        return self._a

    @property
    def last_event_id(self) -> str | None:
        return self._a.last_event_id

    def sign_in(self, username: str, password: str) -> Tokens:
        return self._loop.run(self._a.sign_in(username, password))

    def register(self, username: str, password: str) -> User:
        return self._loop.run(self._a.register(username, password))

    def refresh(self) -> Tokens:
        return self._loop.run(self._a.refresh())

    def logout(self) -> None:
        self._loop.run(self._a.logout())

    def me(self) -> User:
        return self._loop.run(self._a.me())

    def send(
        self,
        room_id: str,
        text: str,
        *,
        client_msg_id: str | None = None,
        timestamp: Any = None,
        retries: int = 5,
    ) -> Message:
        return self._loop.run(
            self._a.send(
                room_id, text, client_msg_id=client_msg_id, timestamp=timestamp, retries=retries
            )
        )

    def history(
        self, room_id: str, *, limit: int = 50, before: int | None = None, after: int | None = None
    ) -> list[Message]:
        return self._loop.run(self._a.history(room_id, limit=limit, before=before, after=after))

    def edit(self, message_id: str, text: str) -> Message:
        return self._loop.run(self._a.edit(message_id, text))

    def delete(self, message_id: str) -> Message:
        return self._loop.run(self._a.delete(message_id))

    def react(self, message_id: str, reaction: str) -> None:
        self._loop.run(self._a.react(message_id, reaction))

    def unreact(self, message_id: str, reaction: str) -> None:
        self._loop.run(self._a.unreact(message_id, reaction))

    def search(
        self, query: str, *, room_id: str | None = None, limit: int = 20, before: str | None = None
    ) -> SearchPage:
        return self._loop.run(self._a.search(query, room_id=room_id, limit=limit, before=before))

    def upload(
        self,
        room_id: str,
        file: str | Path | bytes,
        *,
        filename: str | None = None,
        content_type: str = "application/octet-stream",
        caption: str | None = None,
    ) -> Message:
        return self._loop.run(
            self._a.upload(
                room_id, file, filename=filename, content_type=content_type, caption=caption
            )
        )

    def download(self, message_or_url: Message | str) -> bytes:
        return self._loop.run(self._a.download(message_or_url))

    def rooms(self) -> list[Room]:
        return self._loop.run(self._a.rooms())

    def room(self, room_id: str) -> Room:
        return self._loop.run(self._a.room(room_id))

    def create_room(self, name: str, visibility: str = "public") -> Room:
        return self._loop.run(self._a.create_room(name, visibility))

    def join(self, room_id: str) -> Room:
        return self._loop.run(self._a.join(room_id))

    def leave(self, room_id: str) -> None:
        self._loop.run(self._a.leave(room_id))

    def members(self, room_id: str) -> list[Member]:
        return self._loop.run(self._a.members(room_id))

    def invite(
        self, room_id: str, *, user_id: str | None = None, username: str | None = None
    ) -> Member:
        return self._loop.run(self._a.invite(room_id, user_id=user_id, username=username))

    def mark_read(self, room_id: str, seq: int) -> int:
        return self._loop.run(self._a.mark_read(room_id, seq))

    def typing(self, room_id: str, is_typing: bool = True) -> None:
        self._loop.run(self._a.typing(room_id, is_typing))

    def set_presence(self, status: str) -> None:
        self._loop.run(self._a.set_presence(status))

    def stream(self, last_event_id: str | None = None) -> Iterator[Event]:
        """``AsyncHubbub.stream``, blocking: resumes by itself; break out to stop."""
        agen = self._a.stream(last_event_id)
        try:
            while True:
                try:
                    event = self._loop.run(_next(agen))
                except StopAsyncIteration:
                    return
                yield event
        finally:
            with contextlib.suppress(RuntimeError, StopAsyncIteration):
                self._loop.run(agen.aclose())


class ServerClient:
    """The blocking twin of ``AsyncServerClient``."""

    def __init__(self, base_url: str = DEFAULT_URL, server_key: str = "", **kw: Any) -> None:
        self._loop = _Loop()
        self._a: AsyncServerClient = self._loop.run(
            _make(lambda: AsyncServerClient(base_url, server_key, **kw))
        )

    def __enter__(self) -> ServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.run(self._a.aclose())
        self._loop.close()

    def post_message(
        self,
        room_id: str,
        text: str,
        *,
        user_id: str | None = None,
        client_msg_id: str | None = None,
        retries: int = 5,
    ) -> Message:
        return self._loop.run(
            self._a.post_message(
                room_id, text, user_id=user_id, client_msg_id=client_msg_id, retries=retries
            )
        )

    def notify(self, user_id: str, event: str, data: Any = None) -> Notification:
        return self._loop.run(self._a.notify(user_id, event, data))

    def broadcast(self, room_id: str, event: str, data: Any = None) -> None:
        self._loop.run(self._a.broadcast(room_id, event, data))

    def provision_user(self, user_id: str, username: str | None = None) -> User:
        return self._loop.run(self._a.provision_user(user_id, username))

    def delete_user(self, user_id: str) -> None:
        self._loop.run(self._a.delete_user(user_id))

    def add_member(self, room_id: str, user_id: str) -> Member:
        return self._loop.run(self._a.add_member(room_id, user_id))

    def remove_member(self, room_id: str, user_id: str) -> None:
        self._loop.run(self._a.remove_member(room_id, user_id))


async def _make(factory: Callable[[], T]) -> T:
    """Build on the loop's thread: httpx's async client belongs to the loop that made it."""
    return factory()


async def _next(agen: AsyncGenerator[Event, None]) -> Event:
    return await agen.__anext__()
