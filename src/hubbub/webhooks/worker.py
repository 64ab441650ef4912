"""The delivery loop: read the log past the cursor a page at a time, POST each change, move the
cursor when the whole page is done.

Ordering: a page's changes are grouped by room; each room's are POSTed one after another (the
next only after the previous got a 2xx or was given up), rooms side by side. The cursor moves
to the page's end only when every room of the page is done, so a room whose receiver keeps
failing holds back the *next* pages of every room (the log has one cursor), never the order of
its own. A restart re-sends the unfinished page from its start: at least once, duplicates
possible, each with the same ``id``.

Retries: exponential back-off with jitter, 1 s doubling to 5 min. A change whose delivery still
fails 24 h after it was stored is given up (logged, counted) so one dead change cannot stop the
log for ever."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime

import httpx

from hubbub.store.sql.engine import Database
from hubbub.webhooks.leader import Leadership
from hubbub.webhooks.outbox import Delivery, Outbox
from hubbub.webhooks.signing import HEADER, sign

log = logging.getLogger("hubbub.webhooks")

PAGE = 200
ROOMS_AT_ONCE = 8


class LostLeadership(Exception):
    """Another node may be delivering now: stop before sending anything more."""


class WebhookWorker:
    def __init__(
        self,
        db: Database,
        leadership: Leadership,
        url: str,
        secret: str,
        *,
        give_up_after: float = 24 * 3600,
        first_retry: float = 1.0,
        max_retry: float = 300.0,
        idle_poll: float = 0.2,
        lock_poll: float = 3.0,
        on_delivered: Callable[[], None] = lambda: None,
        on_failed: Callable[[], None] = lambda: None,
        on_given_up: Callable[[], None] = lambda: None,
        on_lag: Callable[[float], None] = lambda _s: None,
        on_backlog: Callable[[int], None] = lambda _n: None,
    ) -> None:
        self._outbox = Outbox(db, url)
        self._leader = leadership
        self._url = url
        self._secret = secret
        self._give_up_after = give_up_after
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._idle_poll = idle_poll
        self._lock_poll = lock_poll
        self._on_delivered = on_delivered
        self._on_failed = on_failed
        self._on_given_up = on_given_up
        self._on_lag = on_lag
        self._on_backlog = on_backlog  # log positions not yet delivered (head - cursor)
        self._cursor = 0
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0),
            limits=httpx.Limits(max_connections=ROOMS_AT_ONCE),
            follow_redirects=False,
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Whatever was being sent is sent again by the next holder of the lock (or after
        restart): the cursor only moves past changes that were answered."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._http.aclose()
        await self._leader.release()

    async def _run(self) -> None:
        announced = False
        while True:
            try:
                if not await self._leader.acquire():
                    announced = False
                    await asyncio.sleep(self._lock_poll)
                    continue
                if not announced:
                    log.info("webhooks: this node delivers to %s", self._url)
                    announced = True
                await self._pump()
            except LostLeadership:
                log.warning("webhooks: lost the delivery lock; another node takes over")
                announced = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away, most likely: try again shortly
                log.warning("webhooks: delivery loop failed (%s); retrying", exc)
                await asyncio.sleep(1.0)

    async def _pump(self) -> None:
        cursor = self._cursor = await self._outbox.cursor()
        while True:
            if not await self._leader.acquire():
                raise LostLeadership
            found, upto = await self._outbox.page(cursor, PAGE)
            self._on_backlog(max(0, self._outbox.head - cursor))
            if found:
                await self._deliver_page(found)
            if upto > cursor:
                await self._outbox.advance(upto)
                cursor = self._cursor = upto
                self._on_backlog(max(0, self._outbox.head - cursor))
            if len(found) < PAGE:
                self._on_lag(0.0)
                await asyncio.sleep(self._idle_poll)

    async def _deliver_page(self, found: list[Delivery]) -> None:
        per_room: dict[str, list[Delivery]] = {}
        for d in found:
            per_room.setdefault(d.room_id, []).append(d)
        gate = asyncio.Semaphore(ROOMS_AT_ONCE)

        async def room(items: list[Delivery]) -> None:
            async with gate:
                for d in items:
                    await self._deliver(d)

        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(room(items)) for items in per_room.values()]
        try:
            await asyncio.gather(*tasks)
        except BaseException:  # lost the lock or cancelled: stop every room of the page
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _deliver(self, d: Delivery) -> None:
        attempt = 0
        while True:
            self._on_lag(max(0.0, time.time() - _epoch(d.created_at)))
            outcome = await self._post(d)
            if outcome is None:
                self._on_delivered()
                return
            self._on_failed()
            await self._report_backlog()
            if time.time() - _epoch(d.created_at) > self._give_up_after:
                log.error(
                    "webhooks: giving up change %d (%s in %s) after %d attempts: %s",
                    d.position,
                    d.type,
                    d.room_id,
                    attempt + 1,
                    outcome,
                )
                self._on_given_up()
                return
            delay = min(self._max_retry, self._first_retry * 2**attempt)
            delay *= random.uniform(0.5, 1.0)
            log.warning(
                "webhooks: change %d not delivered (%s); retry in %.1f s",
                d.position,
                outcome,
                delay,
            )
            attempt += 1
            await asyncio.sleep(delay)
            if not await self._leader.acquire():
                raise LostLeadership

    async def _report_backlog(self) -> None:
        """While a change is being retried the log goes on growing: read its head again (once
        per failed attempt, so at most once a second per room being retried)."""
        try:
            head = await self._outbox.read_head()
        except Exception as exc:  # the database away: the gauge keeps its last value
            log.debug("webhooks: backlog not read: %s", exc)
            return
        self._on_backlog(max(0, head - self._cursor))

    async def _post(self, d: Delivery) -> str | None:
        """None when the receiver took it (any 2xx), else why not."""
        headers = {
            "Content-Type": "application/json",
            HEADER: sign(self._secret, d.body),
            "User-Agent": "hubbub-webhooks",
        }
        try:
            r = await self._http.post(self._url, content=d.body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if 200 <= r.status_code < 300:
            return None
        return f"HTTP {r.status_code}"


def _epoch(created_at: str) -> float:
    try:
        return datetime.fromisoformat(created_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


def check_settings(url: str, secret: str | None) -> None:
    """Refuse to start on settings that could only fail later, one delivery at a time: a URL
    that is not http(s), or no secret (receivers could not tell our POSTs from anyone's)."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"--webhook-url must be an http:// or https:// URL, got {url!r}")
    if not secret:
        raise ValueError(
            "--webhook-url needs --webhook-secret (HUBBUB_WEBHOOK_SECRET) to sign with"
        )
