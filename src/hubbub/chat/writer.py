"""The one writer of messages: group commit.

Sends go through one writer task that takes whatever has queued up (up to ``write_batch_max``)
and appends it in one transaction — group commit, so many concurrent sends cost one durable
commit — then publishes the new messages in ``seq`` order and only then answers the senders.
A 201 therefore always means "on disk"; a failed commit answers every sender of the batch with
503 and stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hubbub import tracing
from hubbub.auth.identity import Identity
from hubbub.chat.checks import check_client_msg_id, check_room_id, check_text
from hubbub.chat.publish import Publisher
from hubbub.encoding import Event
from hubbub.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from hubbub.hub import CONTROL
from hubbub.limits import MAX_MESSAGE_CHARS
from hubbub.models import ClientTimestamp, Message, NewMessage
from hubbub.store.base import AppendOutcome, AppendRequest, AppendResult, Store
from hubbub.typing.base import Typing

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

log = logging.getLogger("hubbub.chat")


# Commit pacing: people who sent within this many seconds are "sending now"; a batch of this
# many sends is big enough to commit at once (under that load the queue refills during the
# commit anyway, and waiting would only leave the writer idle).
PACE_WINDOW = 0.25
PACED_BELOW = 16


class CommitPacer:
    """How many sends a commit is worth waiting for (``commit_interval``).

    A commit's ``fsync`` costs the same for one send as for fifty, so while several people are
    sending, a small batch waits — at most until ``interval`` after the previous commit — for
    the sends that are about to arrive: as many as arrive in an interval at the recent rate,
    and never more than the number of people sending now (a closed loop of eight senders has
    eight sends to wait for, and is committed the moment the eighth arrives). One person
    sending alone never waits: nobody could share the commit."""

    __slots__ = ("_count", "_rate", "_seen", "_since", "interval", "window")

    def __init__(self, interval: float, window: float = PACE_WINDOW) -> None:
        self.interval = interval
        self.window = window
        self._seen: dict[str, float] = {}  # sender → when they last sent
        self._count = 0  # sends since the last commit
        self._since = 0.0
        self._rate = 0.0  # sends per second, smoothed over commits

    def arrived(self, user_id: str, now: float) -> None:
        self._seen[user_id] = now
        self._count += 1

    def committing(self, now: float) -> None:
        elapsed = now - self._since
        if elapsed > 0:
            rate = self._count / elapsed
            self._rate = rate if elapsed > self.window else 0.7 * self._rate + 0.3 * rate
        self._count = 0
        self._since = now

    def expected(self, now: float) -> int:
        """The batch size worth waiting for now; 0 or 1: do not wait."""
        cutoff = now - self.window
        stale = [u for u, t in self._seen.items() if t < cutoff]
        for u in stale:
            del self._seen[u]
        senders = len(self._seen)
        if senders < 2:
            return 0
        return min(senders, max(2, round(self._rate * self.interval)))


@dataclass(slots=True)
class Sent:
    message: Message
    event: Event
    created: bool


@dataclass(slots=True)
class _Job:
    request: AppendRequest
    future: asyncio.Future[tuple[AppendResult, Event | None]]
    trace: SpanContext | None = None  # the sender's span (only while tracing is on)


class Writer:
    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        typing: Typing,
        *,
        trust: bool,
        max_message_chars: int = MAX_MESSAGE_CHARS,
        write_batch_max: int = 256,
        commit_interval: float = 0.0,
        pace_window: float = PACE_WINDOW,
        on_stored: Callable[[int], None] | None = None,
        on_commit: Callable[[float, int], None] | None = None,
    ) -> None:
        self.store = store
        self.publisher = publisher
        # Sending ends the sender's typing indicator: the writer asks the tracker directly,
        # a dict lookup, so the hot path stays one lookup when nobody is typing.
        self.typing = typing
        self.trust = trust
        self.max_message_chars = max_message_chars
        self._batch_max = write_batch_max
        self._pacer = CommitPacer(commit_interval, pace_window) if commit_interval > 0 else None
        self._wake: asyncio.Future[None] | None = None  # a paced commit waiting for sends
        self._wanted = 0  # … until this many are queued
        # A store that stops answering must not hold every sender: they get 503 and retry
        # (with client_msg_id, a commit that landed after all is answered, not duplicated).
        self.commit_timeout = 5.0
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._on_stored = on_stored
        self._on_commit = on_commit  # (seconds of the append, batch size), once per commit

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._write_loop())

    async def close(self) -> None:
        """Finish every queued send, then stop the writer."""
        if self._task is not None:
            await self._queue.put(None)
            self._wake_writer()
            await self._task
            self._task = None

    async def send(
        self,
        who: Identity,
        room_id: str,
        text: str,
        *,
        timestamp: ClientTimestamp = None,
        client_msg_id: str | None = None,
    ) -> Sent:
        check_room_id(room_id)
        check_text(text, self.max_message_chars)
        check_client_msg_id(client_msg_id)
        if isinstance(timestamp, str) and len(timestamp) > 64:
            raise Invalid("timestamp must be a number or a short string", code="invalid_timestamp")
        sent = await self.append(
            NewMessage(
                room_id=room_id,
                user_id=who.user_id,
                username=who.username,
                text=text,
                timestamp=timestamp,
                client_msg_id=client_msg_id,
            )
        )
        if self.typing.active(room_id, who.user_id):  # sending ends the typing indicator
            try:
                await self.typing.set(room_id, who.user_id, who.username, False)
            except Exception as exc:  # the message is stored: its 201 must stand
                log.warning("typing of %s not ended: %s", who.user_id, exc)
        return sent

    async def append(self, message: NewMessage) -> Sent:
        """Queue for the writer (trust mode: room, membership and user on first use) and wait
        for the commit. Checked already: files append their message here too."""
        return await self.append_request(
            AppendRequest(
                message, create_room=self.trust, join_public=self.trust, create_user=self.trust
            )
        )

    async def append_request(self, request: AppendRequest) -> Sent:
        """Queue one append as it is (the server API chooses its own first-use rules)."""
        if self._task is None or self._task.done():
            raise Unavailable("the server is shutting down", code="shutting_down")
        message = request.message
        future: asyncio.Future[tuple[AppendResult, Event | None]] = (
            asyncio.get_running_loop().create_future()
        )
        job = _Job(request, future)
        if tracing.TRACER is not None:
            job.trace = tracing.current()
        self._queue.put_nowait(job)
        if self._pacer is not None:
            self._pacer.arrived(message.user_id, asyncio.get_running_loop().time())
            if self._wake is not None and self._queue.qsize() >= self._wanted:
                self._wake_writer()
        result, event = await future
        if job.trace is not None:
            tracing.annotate(room_id=message.room_id, seq=result.message and result.message.seq)
        return _sent(result, event, message.room_id)

    async def _write_loop(self) -> None:
        queue = self._queue
        loop = asyncio.get_running_loop()
        pacer = self._pacer
        last_commit = -1.0
        stopping = False
        while not stopping:
            job = await queue.get()
            if job is None:
                break
            jobs = [job]
            stopping = self._take_queued(jobs)
            if pacer is not None and not stopping:
                now = loop.time()
                wanted = min(pacer.expected(now), PACED_BELOW, self._batch_max)
                wait = last_commit + pacer.interval - now
                if len(jobs) < wanted and wait > 0:
                    await self._gather(wanted - len(jobs), wait)
                    stopping = self._take_queued(jobs)
            last_commit = loop.time()
            if pacer is not None:
                pacer.committing(last_commit)
            await self._commit(jobs)

    async def _gather(self, more: int, wait: float) -> None:
        """Until ``more`` sends are queued, or ``wait`` seconds have passed."""
        loop = asyncio.get_running_loop()
        wake = self._wake = loop.create_future()
        self._wanted = more
        timer = loop.call_later(wait, self._wake_writer)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    def _wake_writer(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _take_queued(self, jobs: list[_Job]) -> bool:
        """Add what has queued up to ``jobs`` (up to a batch); True when the stop mark came."""
        queue = self._queue
        while len(jobs) < self._batch_max and not queue.empty():
            nxt = queue.get_nowait()
            if nxt is None:
                return True
            jobs.append(nxt)
        return False

    async def _commit(self, jobs: list[_Job]) -> None:
        """One batch (in a ``commit`` span when one of its sends is traced and sampled)."""
        if tracing.TRACER is None or not any(j.trace is not None for j in jobs):
            await self._commit_batch(jobs, traced=False)
        else:
            with tracing.commit_span([j.trace for j in jobs], len(jobs)):
                await self._commit_batch(jobs, traced=True)

    async def _commit_batch(self, jobs: list[_Job], *, traced: bool) -> None:
        started = time.perf_counter()
        try:
            results = await asyncio.wait_for(
                self.store.messages.append_batch([j.request for j in jobs]), self.commit_timeout
            )
        except Exception as exc:
            if self._on_commit is not None:
                self._on_commit(time.perf_counter() - started, len(jobs))
            log.error("append of %d messages failed: %s", len(jobs), exc)
            error = Unavailable(
                "the message store is unavailable; nothing was stored, try again",
                code="store_unavailable",
            )
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(error)
            return
        if self._on_commit is not None:  # the append in one transaction, its fsync included
            self._on_commit(time.perf_counter() - started, len(jobs))
        publisher = self.publisher
        events: list[Event | None] = []
        for result in results:
            event = None
            if result.message is not None:
                event = Event.message(result.message, result.position or None, result.rev or None)
            events.append(event)
            if result.room_created:
                added = next((c for c in result.changes if c.name == "room_added"), None)
                if added is not None:  # its data is the new room (trust mode: public)
                    await publisher.publish(Event(CONTROL, "room_created", added.data))
            await publisher.changes(result.changes)
            if result.outcome is AppendOutcome.CREATED and event is not None:
                if not traced:
                    await publisher.publish(event)
                else:
                    with tracing.publish_span(event.room_id, event.seq) as span:
                        event.trace = tracing.traceparent(span)
                        await publisher.publish(event)
        created = sum(1 for r in results if r.outcome is AppendOutcome.CREATED)
        if created and self._on_stored is not None:
            self._on_stored(created)
        for job, result, event in zip(jobs, results, events, strict=True):
            if not job.future.done():
                job.future.set_result((result, event))


def _sent(result: AppendResult, event: Event | None, room_id: str) -> Sent:
    outcome = result.outcome
    if outcome is AppendOutcome.CREATED or outcome is AppendOutcome.DUPLICATE:
        assert result.message is not None
        assert event is not None
        return Sent(result.message, event, outcome is AppendOutcome.CREATED)
    if outcome is AppendOutcome.CONFLICT:
        raise Conflict(
            "client_msg_id was already used for a different message",
            code="idempotency_conflict",
        )
    if outcome is AppendOutcome.NOT_MEMBER:
        raise Forbidden(f"you are not a member of room {room_id!r}", code="not_a_member")
    if outcome is AppendOutcome.REJECTED:
        raise Invalid(
            "the message could not be stored (the store refused it); nothing was stored",
            code="message_rejected",
        )
    raise NotFound(f"room {room_id!r} not found", code="room_not_found")
