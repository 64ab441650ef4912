"""Everything one server process runs, wired from Settings: store, broker, hub, the chat rules,
auth."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hubbub import tracing
from hubbub.auth.accounts import Accounts
from hubbub.auth.external_keys import describe, load_public_keys
from hubbub.auth.identity import Authenticator
from hubbub.auth.tokens import TokenSigner
from hubbub.backend_url import namespace
from hubbub.batch import TickBatch
from hubbub.broker.base import open_broker
from hubbub.chat.activity import Activity
from hubbub.chat.backend import BackendRules
from hubbub.chat.files import FileRules
from hubbub.chat.messages import MessageRules
from hubbub.chat.publish import Publisher
from hubbub.chat.rooms import RoomRules
from hubbub.chat.writer import Writer
from hubbub.config import Settings
from hubbub.encoding import Event, use_cursor_secret
from hubbub.files.base import FileStore
from hubbub.files.select import file_store
from hubbub.hub import Hub
from hubbub.metrics import CountedFailureLimiter, Metrics
from hubbub.presence.base import open_presence
from hubbub.ratelimit.base import open_failure_limiter, open_send_limiter
from hubbub.store.sql import SqlStore
from hubbub.transports.context import StreamConfig, StreamDeps
from hubbub.transports.events import AllRoomsStreams
from hubbub.transports.limits import StreamLimits
from hubbub.transports.resume import PresenceSnapshots, event_of
from hubbub.typing.base import open_typing
from hubbub.webhooks.leader import leadership_for
from hubbub.webhooks.worker import WebhookWorker

log = logging.getLogger("hubbub")


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = SqlStore(
            settings.database_url(), sqlite_synchronous=settings.sqlite_synchronous
        )
        self.broker = open_broker(settings.broker, settings.broker_prefix)
        if settings.shared_broker():
            from hubbub.broker.redis import RedisBroker

            if isinstance(self.broker, RedisBroker):
                self.broker.on_lag = self.metrics.broker_lag.observe
        if settings.otel_endpoint:  # per process: each --workers worker its own exporter
            tracing.configure(settings.otel_endpoint, settings.otel_service_name)
        # --jwt-public-key is read once, here (``hubbub serve`` has checked it before starting)
        external = load_public_keys(settings.jwt_public_key) if settings.jwt_public_key else None
        if external is not None:
            log.info("accepting access tokens signed by: %s", ", ".join(describe(external)))
        self.signer = TokenSigner(settings.resolved_secret(), external, settings.jwt_audience)
        use_cursor_secret(settings.resolved_secret())
        self.auth = Authenticator(
            settings.auth,
            self.store,
            self.signer,
            session_ttl=settings.session_ttl,
            cookie_secure=settings.cookie_secure,
        )
        ns = namespace(settings.broker_prefix)
        self.limiter = open_send_limiter(
            settings.broker,
            settings.rate_limit_per_second,
            settings.rate_limit_burst,
            key_prefix=f"{ns}limits",
            on_refused=self.metrics.rate_limited.labels("send").inc,
        )
        self.sign_ins = CountedFailureLimiter(
            open_failure_limiter(
                settings.broker,
                settings.auth_failures_per_user,
                settings.auth_failures_per_address,
                settings.auth_failure_window,
                key_prefix=f"{ns}limits",
            ),
            self.metrics,
        )
        self.presence = open_presence(
            settings.broker,
            grace=settings.presence_grace,
            ttl=settings.presence_ttl,
            prefix=f"{ns}presence:",
        )
        self.typing = open_typing(
            settings.broker, expiry=settings.typing_timeout, prefix=f"{ns}typing:"
        )
        # Rooms first listened to at the same moment (a connect storm) read their heads at once.
        self._heads: TickBatch[str, int] = TickBatch(self.store.log.heads)
        self.hub = Hub(
            self.broker,
            self._head,
            self._gap,
            ping_interval=settings.ping_interval,
            on_delivered=self.metrics.observe_delivery,
            on_cutoff=self.metrics.slow_cutoffs.inc,
            positions=self._positions_between,
        )
        trust = settings.auth == "trust"
        self.publisher = Publisher(self.broker, self.presence)
        self.rooms = RoomRules(self.store, self.publisher, self.presence, trust=trust)
        self.activity = Activity(
            self.store,
            self.publisher,
            self.rooms,
            presence=self.presence,
            typing=self.typing,
        )
        self.writer = Writer(
            self.store,
            self.publisher,
            self.activity.typing,
            trust=trust,
            max_message_chars=settings.max_message_chars,
            write_batch_max=settings.write_batch_max,
            commit_interval=settings.commit_interval,
            on_stored=self.metrics.messages.inc,
            on_commit=self.metrics.observe_commit,
        )
        self.files: FileStore = file_store(settings)
        self.file_rules = FileRules(
            self.store,
            self.rooms,
            self.writer,
            self.files,
            max_message_chars=settings.max_message_chars,
        )
        self.messages = MessageRules(
            self.store,
            self.publisher,
            self.rooms,
            self.file_rules,
            max_message_chars=settings.max_message_chars,
        )
        self.accounts = Accounts(
            self.store,
            self.auth,
            self.signer,
            self.publisher,
            self.sign_ins,
            session_ttl=settings.session_ttl,
            access_token_ttl=settings.access_token_ttl,
            refresh_token_ttl=settings.refresh_token_ttl,
            ticket_ttl=settings.ticket_ttl,
        )
        self.backend = BackendRules(self.store, self.writer, self.publisher, self.auth, trust=trust)
        self._housekeeping: asyncio.Task[None] | None = None
        self.webhooks: WebhookWorker | None = None
        self._resyncer: asyncio.Task[None] | None = None
        # Everything the stream transports use, and all they are given.
        self.streams = StreamDeps(
            config=StreamConfig.of(settings),
            hub=self.hub,
            store=self.store,
            rooms=self.rooms,
            writer=self.writer,
            messages=self.messages,
            activity=self.activity,
            auth=self.auth,
            limiter=self.limiter,
            stream_limits=StreamLimits(
                settings.max_streams_per_user,
                settings.max_pending_streams,
                settings.retry_ms,
                settings.retry_spread,
                on_refused=self.metrics.rate_limited.labels("streams").inc,
            ),
            metrics=self.metrics,
            presence_snapshots=PresenceSnapshots(self.hub, self.store, self.presence),
        )
        self.all_streams = AllRoomsStreams(self.streams)
        self.hub.on_sessions_ended(self.auth.forget_sessions)

    async def _head(self, room_id: str) -> int:
        """The newest rev of a room's log (the hub's sequencer starts there)."""
        return await self._heads.get(room_id) or 0

    async def _gap(self, room_id: str, after: int, before: int) -> list[Event]:
        """A hole in a room's log, read back from the store (messages and changes)."""
        limit = min(before - after - 1, self.settings.replay_page)
        found = await self.store.log.room_log(room_id, after, limit, before)
        return [event_of(e) for e in found]

    async def _positions_between(
        self, after: int, through: int, room_ids: list[str]
    ) -> list[Event]:
        """The stored entries of ``room_ids`` with stream positions in ``(after, through]``."""
        return [event_of(e) for e in await self.store.log.log_between(after, through, room_ids)]

    async def start(self) -> None:
        await self.store.start()
        self.hub.positions.rebase(await self.store.log.position())
        await self.files.start()
        await self.hub.start()
        self.broker.on_reconnect(self._resync_reconnected)
        await self.activity.start()
        await self.writer.start()
        if self.settings.webhook_url:
            self.webhooks = self._webhook_worker(self.settings.webhook_url)
            self.webhooks.start()
        if self.settings.shared_broker():
            self._resyncer = asyncio.get_running_loop().create_task(self._resync_loop())
        if self.settings.retention_days is not None:
            self._housekeeping = asyncio.get_running_loop().create_task(self._purge_loop())
        if self.settings.auth == "trust":
            log.warning(
                "AUTH MODE IS 'trust': anyone can act as any user by naming them. "
                "For local development only."
            )

    def _webhook_worker(self, url: str) -> WebhookWorker:
        db = self.store.db
        m = self.metrics
        return WebhookWorker(
            db,
            leadership_for(db.url, url, self.settings.data_dir),
            url,
            self.settings.webhook_secret or "",
            on_delivered=m.webhook_deliveries.inc,
            on_failed=m.webhook_failures.inc,
            on_given_up=m.webhook_given_up.inc,
            on_lag=m.webhook_lag.set,
            on_backlog=m.webhook_backlog.set,
        )

    async def _resync(self, trigger: str) -> None:
        recovered = await self.hub.resync(self.store.log.heads)
        self.metrics.observe_resync(trigger, recovered)

    async def _resync_reconnected(self) -> None:
        await self._resync("reconnect")

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            try:
                await self._resync("periodic")
            except Exception as exc:
                log.warning("resync failed: %s", exc)

    async def stop(self) -> None:
        self.hub.close_all()
        if self._resyncer is not None:
            self._resyncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resyncer
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self.activity.close()
        await self.writer.close()
        if self.webhooks is not None:
            await self.webhooks.close()
        await self.broker.close()
        await self.files.close()
        await self.store.close()
        if self.settings.otel_endpoint:  # export what is queued (off the loop)
            await asyncio.to_thread(tracing.shutdown)

    async def _purge_loop(self) -> None:
        days = self.settings.retention_days
        assert days is not None
        while True:
            try:
                removed, file_ids = await self.store.messages.purge_older_than(days)
                for file_id in file_ids:
                    await self.files.delete(file_id)
                if removed or file_ids:
                    log.info(
                        "retention: removed %d messages and %d files older than %d days",
                        removed,
                        len(file_ids),
                        days,
                    )
            except Exception:
                log.exception("retention purge failed")
            await asyncio.sleep(3600)
