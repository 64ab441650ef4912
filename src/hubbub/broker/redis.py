"""Redis pub/sub between nodes: a channel per room (``chat:room:<id>``, the seed's naming).

Each node subscribes only to the rooms it has local listeners for, on one pub/sub connection,
read by one task. Redis pub/sub is at-most-once: while a connection is down, whatever was
published is gone. That is fine here — the store is the source of truth: when the connection
comes back (with exponential back-off) the node re-subscribes and calls the reconnect hook; the
hub then compares each room's head in the store with what it has delivered and reads the
difference. A periodic check does the same for anything lost without a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hubbub.backend_url import connect
from hubbub.broker.base import EventCallback, ReconnectHook
from hubbub.encoding import Event

log = logging.getLogger("hubbub.broker.redis")

MAX_BACKOFF = 5.0


class RedisBroker:
    def __init__(self, url: str, prefix: str = "chat:room:") -> None:
        self._url = url
        self._prefix = prefix
        self._client = connect(url)
        # Its own connection, without retries: redis-py would otherwise reconnect and
        # re-subscribe silently, and the hook that repairs what was lost meanwhile never runs.
        self._subscriber = connect(url, retries=0)
        self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        self._rooms: set[str] = set()
        self._on_event: EventCallback | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._closed = False
        self._on_reconnect: ReconnectHook | None = None
        # Publish (any node) → received here, in seconds, once per event received (the metric
        # hubbub_broker_lag_seconds); per event and node, never per subscriber.
        self.on_lag: Callable[[float], None] | None = None

    def channel(self, room_id: str) -> str:
        return self._prefix + room_id

    async def start(self, on_event: EventCallback) -> None:
        self._on_event = on_event
        await self._client.ping()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def close(self) -> None:
        # A flag as well as a cancel: a cancellation that lands inside redis-py is sometimes
        # absorbed, and close must not then wait on the reader forever.
        self._closed = True
        self._subscribed.set()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader], timeout=5.0)
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        for client in (self._subscriber, self._client):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    async def ping(self) -> None:
        await self._client.ping()

    async def publish(self, event: Event) -> None:
        await self._client.publish(self.channel(event.room_id), event.wire(time.time()))

    async def subscribe(self, room_id: str) -> None:
        self._rooms.add(room_id)
        try:
            await self._pubsub.subscribe(self.channel(room_id))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # The reader re-subscribes everything in ``_rooms`` once Redis is back.
            log.warning("subscribe to %s deferred: %s", room_id, exc)
        finally:
            # Only now may the reader read: before the first subscribe completes, the pub/sub
            # has no connection, and reading would count as losing it.
            self._subscribed.set()

    async def unsubscribe(self, room_id: str) -> None:
        self._rooms.discard(room_id)
        with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
            await self._pubsub.unsubscribe(self.channel(room_id))

    def on_reconnect(self, hook: ReconnectHook) -> None:
        self._on_reconnect = hook

    async def _read(self) -> None:
        backoff = 0.1
        lost = False
        while not self._closed:
            try:
                if lost:
                    await self._resubscribe()
                    lost = False
                    backoff = 0.1
                    log.info("redis pub/sub is back; repairing from the store")
                    await self._reconnected()
                if not self._rooms:
                    self._subscribed.clear()
                await self._subscribed.wait()
                message = await self._pubsub.get_message(timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                if self._on_event is not None:
                    try:
                        event, sent_at = Event.from_wire_timed(message["data"])
                        if sent_at is not None and self.on_lag is not None:
                            self.on_lag(max(0.0, time.time() - sent_at))
                        self._on_event(event)
                    except Exception:
                        log.exception("bad event on %s", message.get("channel"))
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, OSError, RuntimeError) as exc:
                if not lost:
                    log.warning("redis pub/sub lost: %s; reconnecting", exc)
                lost = True
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)

    async def _reconnected(self) -> None:
        """A failing hook (the store down during the resync) must not end the reader: the
        periodic resync repairs later, but only a live reader delivers anything at all."""
        if self._on_reconnect is None:
            return
        try:
            await self._on_reconnect()
        except Exception:
            log.exception("reconnect hook failed")

    async def _resubscribe(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        self._subscribed.clear()
        if self._rooms:
            await self._pubsub.subscribe(*[self.channel(r) for r in self._rooms])
            self._subscribed.set()
