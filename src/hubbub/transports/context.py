"""What the stream transports use of the process: built once by the runtime, passed to each
entry point, so a transport names its collaborators instead of reaching through the runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubbub.auth.identity import Authenticator
    from hubbub.chat.activity import Activity
    from hubbub.chat.messages import MessageRules
    from hubbub.chat.rooms import RoomRules
    from hubbub.chat.writer import Writer
    from hubbub.config import Settings
    from hubbub.hub import Hub
    from hubbub.metrics import Metrics
    from hubbub.ratelimit import SendLimiter
    from hubbub.store.base import Store
    from hubbub.transports.limits import StreamLimits
    from hubbub.transports.resume import PresenceSnapshots


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """The settings streams read, fixed at start."""

    replay_page: int  # log entries per store read of a replay
    buffer_bytes: int  # a stream's write-buffer bound: past it, the client is cut off
    stale_timeout: float  # unacknowledged data for this long drops the peer (kernel timer)
    retention_days: int | None  # set: a cursor older than what is kept resumes with `reset`
    origins: list[str]  # allowed browser origins for the WebSocket upgrade

    @classmethod
    def of(cls, settings: Settings) -> StreamConfig:
        return cls(
            replay_page=settings.replay_page,
            buffer_bytes=settings.stream_buffer_bytes,
            stale_timeout=settings.stale_timeout,
            retention_days=settings.retention_days,
            origins=settings.origins(),
        )


@dataclass(frozen=True, slots=True)
class StreamDeps:
    config: StreamConfig
    hub: Hub
    store: Store
    rooms: RoomRules  # who may open which room (trust mode: first use joins)
    writer: Writer  # WebSocket ``send`` ops
    messages: MessageRules  # WebSocket ``read`` ops
    activity: Activity  # typing ops; presence of each stream
    auth: Authenticator
    limiter: SendLimiter  # WebSocket ``send`` ops share the HTTP send rate limit
    stream_limits: StreamLimits
    metrics: Metrics
    presence_snapshots: PresenceSnapshots
