"""Presence shared by every node, in Redis, kept alive by heartbeats.

Each connection is a member of ``conns:<user>`` (a sorted set scored by expiry); the node that
holds it renews the score every ``ttl / 3`` seconds. A node that dies stops renewing, so its
connections expire and a sweeper on any node sees ``users`` entries whose newest expiry has
passed and turns those users offline. Every status change is announced exactly once across
all nodes: the announcement is claimed with ``SET status:<user> <new> GET`` (only the node that
saw the old value differ announces).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any, Literal

from redis.exceptions import RedisError

from hubbub.backend_url import connect
from hubbub.clock import Clock, Handle, LoopClock
from hubbub.presence.base import PresenceCallback, Status

log = logging.getLogger("hubbub.presence.redis")


class RedisPresence:
    def __init__(
        self,
        url: str,
        *,
        grace: float = 10.0,
        ttl: float = 30.0,
        prefix: str = "hubbub:presence:",
        clock: Clock | None = None,
    ) -> None:
        self._client = connect(url)
        self._clock: Clock = clock or LoopClock()
        self._grace = grace
        self._ttl = ttl
        self._p = prefix
        self._local: dict[str, set[str]] = {}
        self._offline_checks: dict[str, Handle] = {}
        self._on_change: PresenceCallback | None = None
        self._changes: asyncio.Queue[str | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def _conns(self, user_id: str) -> str:
        return f"{self._p}conns:{user_id}"

    async def start(self, on_change: PresenceCallback) -> None:
        self._on_change = on_change
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._announce()), loop.create_task(self._heartbeat())]

    async def close(self) -> None:
        for handle in self._offline_checks.values():
            handle.cancel()
        # The announcer is stopped by a sentinel as well as cancelled: a cancellation that
        # lands while redis-py is mid-command is sometimes absorbed (seen with redis-py 8),
        # and the worker would then wait on the queue forever, holding up shutdown.
        self._changes.put_nowait(None)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        # Our connections are closing with the process: let them expire for the others.
        with contextlib.suppress(RedisError, OSError):
            await self._client.aclose()

    # connections -------------------------------------------------------------------------

    async def connect(self, user_id: str, conn_id: str) -> None:
        self._local.setdefault(user_id, set()).add(conn_id)
        expiry = time.time() + self._ttl
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.zadd(self._conns(user_id), {conn_id: expiry})
                pipe.zadd(f"{self._p}users", {user_id: expiry}, gt=True)
                pipe.expire(self._conns(user_id), int(self._ttl * 2) + 1)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("presence connect of %s not recorded: %s", user_id, exc)
            return
        finally:
            # A reconnect within the grace ends the pending offline check only once the new
            # connection is in Redis: an announcer reading the user in between must still see
            # them pending (online), not offline for a moment (a flap).
            handle = self._offline_checks.pop(user_id, None)
            if handle is not None:
                handle.cancel()
        self._changes.put_nowait(user_id)

    async def disconnect(self, user_id: str, conn_id: str) -> None:
        local = self._local.get(user_id)
        if local is None or conn_id not in local:
            return
        local.discard(conn_id)
        if not local:
            del self._local[user_id]
        # The grace starts before the connection leaves Redis: an announcer reading the user
        # in between must see them pending (still online), not offline with nothing announced.
        if user_id not in self._offline_checks:
            self._offline_checks[user_id] = self._clock.call_later(
                self._grace, self._grace_over, user_id
            )
        with contextlib.suppress(RedisError, OSError):
            await self._client.zrem(self._conns(user_id), conn_id)

    def _grace_over(self, user_id: str) -> None:
        self._offline_checks.pop(user_id, None)
        self._changes.put_nowait(user_id)

    async def set_status(self, user_id: str, status: Literal["online", "away"]) -> Status:
        key = f"{self._p}away:{user_id}"
        if status == "away":
            await self._client.set(key, b"1")
        else:
            await self._client.delete(key)
        effective = (await self.statuses([user_id]))[user_id]
        self._changes.put_nowait(user_id)
        return effective

    async def statuses(self, user_ids: Iterable[str]) -> dict[str, Status]:
        users = list(user_ids)
        if not users:
            return {}
        now = time.time()
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for user in users:
                    pipe.zcount(self._conns(user), now, "+inf")
                    pipe.exists(f"{self._p}away:{user}")
                found = await pipe.execute()
        except (RedisError, OSError) as exc:
            # Presence is live-only and best effort: with Redis away, answer from what this
            # node knows rather than fail the stream (or WebSocket subscribe) asking for it.
            log.warning("presence statuses unavailable: %s", exc)
            found = []
            for user in users:
                found += [len(self._local.get(user, ())), 0]
        out: dict[str, Status] = {}
        for i, user in enumerate(users):
            live, away = int(found[2 * i]), int(found[2 * i + 1])
            pending = user in self._offline_checks  # within our own grace period
            if live or pending:
                out[user] = "away" if away else "online"
            else:
                out[user] = "offline"
        return out

    # announcing --------------------------------------------------------------------------

    async def _announce(self) -> None:
        """One worker: a user's changes go out in order, each claimed once across nodes."""
        while True:
            user_id = await self._changes.get()
            if user_id is None:
                return
            try:
                status = (await self.statuses([user_id]))[user_id]
                old = await self._client.set(f"{self._p}status:{user_id}", status, get=True)
                if _text(old) == status:
                    continue
                if old is None and status == "offline":
                    continue
                if self._on_change is not None:
                    await self._on_change(user_id, status)
            except Exception:
                log.exception("presence change of %s not announced", user_id)

    async def _heartbeat(self) -> None:
        """Renew our connections; sweep users whose connections all expired (a dead node)."""
        while True:
            await asyncio.sleep(max(0.2, self._ttl / 3))
            try:
                now = time.time()
                expiry = now + self._ttl
                async with self._client.pipeline(transaction=False) as pipe:
                    for user, conns in self._local.items():
                        pipe.zadd(self._conns(user), dict.fromkeys(conns, expiry))
                        pipe.zadd(f"{self._p}users", {user: expiry}, gt=True)
                        pipe.expire(self._conns(user), int(self._ttl * 2) + 1)
                    await pipe.execute()
                stale = await self._client.zrangebyscore(f"{self._p}users", "-inf", now)
                for raw in stale:
                    user = _text(raw) or ""
                    await self._client.zremrangebyscore(self._conns(user), "-inf", now)
                    if await self._client.zcard(self._conns(user)) == 0 and await self._client.zrem(
                        f"{self._p}users", user
                    ):
                        self._changes.put_nowait(user)
            except (RedisError, OSError) as exc:
                log.warning("presence heartbeat failed: %s", exc)


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value if isinstance(value, str) else None
