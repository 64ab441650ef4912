"""One source of configuration: each field is a ``hubbub serve`` flag and a ``HUBBUB_*`` env var."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

AuthMode = Literal["jwt", "trust"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUBBUB_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("./hubbub-data")
    database: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in the data dir"
    )
    broker: str = Field(
        default="memory://",
        description="memory:// (one process) or redis://host:6379/0 (several processes/nodes)",
    )
    broker_prefix: str = "chat:room:"
    presence_ttl: float = Field(
        default=30.0,
        description="a node that stops renewing its connections for this long is "
        "presumed dead and its users go offline (Redis presence)",
    )
    resync_interval: float = Field(
        default=10.0,
        description="how often a node checks the store for events its broker "
        "did not deliver (Redis broker)",
    )
    workers: int = 1
    auth: AuthMode = "jwt"
    force_trust: bool = Field(
        default=False, description="allow --auth trust on a non-loopback address (dangerous)"
    )
    secret: str | None = Field(default=None, description="HS256 secret; generated once if unset")
    log_level: str = "info"

    ping_interval: float = 15.0
    stale_timeout: float = Field(
        default=300.0,
        description="a stream whose peer acknowledges nothing (not even pings) for this long "
        "is dropped (TCP_USER_TIMEOUT)",
    )
    presence_grace: float = 10.0
    typing_timeout: float = 5.0
    retry_ms: int = 3000
    allowed_origins: str = Field(
        default="",
        description="comma-separated extra Origins allowed on /chat/ws ('*' for any); "
        "the server's own host is always allowed",
    )
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    stream_buffer_bytes: int = 1024 * 1024
    max_message_chars: int = 4000
    max_body_bytes: int = 64 * 1024
    max_upload_bytes: int = Field(
        default=25 * 1024 * 1024, description="largest file upload, in bytes (413 beyond)"
    )
    history_max_limit: int = 200
    replay_page: int = 500
    retention_days: int | None = None

    rate_limit_per_second: float = 10.0
    rate_limit_burst: int = 20

    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 30 * 24 * 3600
    session_ttl: int = 30 * 24 * 3600
    ticket_ttl: int = 30
    cookie_secure: bool | None = Field(
        default=None, description="force the Secure cookie flag; default: when the request is HTTPS"
    )
    metrics_token: str | None = None

    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    write_batch_max: int = 256
    shutdown_timeout: float = 10.0

    def shared_broker(self) -> bool:
        return not self.broker.startswith("memory://")

    def origins(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]

    def database_url(self) -> str:
        if self.database:
            return normalise_database_url(self.database)
        return f"sqlite:///{(self.data_dir / 'hubbub.db').resolve()}"

    def resolved_secret(self) -> str:
        """The explicit secret, else one generated once and kept in the data dir (mode 0600)."""
        if self.secret:
            return self.secret
        path = self.data_dir / "secret.key"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(value)
        tmp.chmod(0o600)
        tmp.replace(path)
        return value


def normalise_database_url(url: str) -> str:
    """Accept the URLs people type: ``postgresql://`` gets the asyncio driver (asyncpg)."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    return url


def is_loopback(host: str) -> bool:
    return host in {"127.0.0.1", "::1", "localhost"} or host.startswith("127.")
