"""One source of configuration: each field is a ``hubbub serve`` flag and a ``HUBBUB_*`` env var."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hubbub.backend_url import backend_of
from hubbub.limits import MAX_MESSAGE_CHARS

AuthMode = Literal["jwt", "trust"]
LOG_LEVELS = ("debug", "info", "warning", "error", "trace")  # trace: uvicorn's, undocumented
MIN_SECRET_BYTES = 32  # HS256 (the signer refuses less)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUBBUB_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
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
    workers: int = Field(default=1, ge=1)
    backlog: int = Field(
        default=8192,
        description="listen backlog: connections the kernel queues before the server accepts "
        "them (capped by net.core.somaxconn); a reconnect storm overflows a small one",
    )
    auth: AuthMode = "jwt"
    force_trust: bool = Field(
        default=False, description="allow --auth trust on a non-loopback address (dangerous)"
    )
    secret: str | None = Field(default=None, description="HS256 secret; generated once if unset")
    log_level: str = "info"
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: one readable line per record; json: one JSON object per line "
        "(Hubbub's and uvicorn's lines alike)",
    )

    ping_interval: float = 15.0
    stale_timeout: float = Field(
        default=300.0,
        description="a stream whose peer acknowledges nothing (not even pings) for this long "
        "is dropped (TCP_USER_TIMEOUT)",
    )
    presence_grace: float = 10.0
    typing_timeout: float = 5.0
    retry_ms: int = 3000
    retry_spread: float = Field(
        default=1.0,
        description="each SSE connection gets a retry: uniform in "
        "[retry_ms, retry_ms × (1 + spread)), so a crowd cut at once does not come back at once",
    )
    max_streams_per_user: int = Field(
        default=100,
        description="open streams (SSE, WebSocket, long-polls) per user and process; "
        "the next gets 429 too_many_streams (0: no limit)",
    )
    max_pending_streams: int = Field(
        default=500,
        description="streams being set up at once (authentication, replay) per process; "
        "beyond it a new one gets 503 server_busy with Retry-After (0: no limit)",
    )
    allowed_origins: str = Field(
        default="",
        description="comma-separated extra Origins allowed on /chat/ws ('*' for any); "
        "the server's own host is always allowed",
    )
    allowed_hosts: str = Field(
        default="",
        description="trust mode: comma-separated Host names answered besides the bound address "
        "and localhost ('*' for any); any other Host is 421 (DNS rebinding)",
    )
    auth_failures_per_user: int = Field(
        default=10,
        description="failed logins/registrations per username per --auth-failure-window before 429",
    )
    auth_failures_per_address: int = Field(
        default=30,
        description="failed logins/registrations per client address per --auth-failure-window "
        "before 429",
    )
    auth_failure_window: int = Field(
        default=300, description="seconds over which failed logins are counted"
    )
    max_header_bytes: int = Field(
        default=64 * 1024, description="request line + headers larger than this: 431"
    )
    header_timeout: float = Field(
        default=10.0, description="seconds a client has to send complete request headers"
    )
    ws_ping_interval: float = 20.0
    ws_ping_timeout: float = 20.0
    stream_buffer_bytes: int = 1024 * 1024
    max_message_chars: int = MAX_MESSAGE_CHARS
    max_body_bytes: int = 64 * 1024
    max_upload_bytes: int = Field(
        default=25 * 1024 * 1024, description="largest file upload, in bytes (413 beyond)"
    )
    files: str = Field(
        default="",
        description="where uploads live: local (<data_dir>/files), database (PostgreSQL) or "
        "s3://bucket/prefix; default: database with PostgreSQL, else local",
    )
    files_endpoint: str | None = Field(
        default=None,
        description="S3 endpoint URL for --files s3://… (MinIO, Ceph…); default: "
        "AWS_ENDPOINT_URL, else AWS",
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
    commit_interval: float = Field(
        default=0.005,
        ge=0,
        le=1,
        description="while several people send, at most one commit per this many seconds "
        "(their sends share it); 0: commit each batch at once",
    )
    shutdown_timeout: float = 10.0

    # plugging Hubbub into an application (API.md: CORS, Server API, your own auth, webhooks)
    cors_origins: str = Field(
        default="",
        description="comma-separated origins that get CORS headers (credentials allowed) on "
        "every chat and auth route; default: none",
    )
    server_key: str | None = Field(
        default=None,
        description="the server API's key(s), sent as 'Authorization: Bearer <key>'; several "
        "comma-separated keys are all accepted (rotation); unset: the server API is off (403)",
    )
    jwt_public_key: str | None = Field(
        default=None,
        description="your identity service's public key(s): PEM text, or a path to a PEM or "
        "JWKS file (several keys allowed); RS256, ES256 and EdDSA access tokens it signs are "
        "accepted beside Hubbub's own",
    )
    jwt_audience: str | None = Field(
        default=None, description="the 'aud' your identity service's tokens must carry"
    )
    webhook_url: str | None = Field(
        default=None, description="POST each stored change here (at least once, in order per room)"
    )
    webhook_secret: str | None = Field(
        default=None, description="HMAC-SHA256 key of the Hubbub-Signature header"
    )
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector base URL (e.g. http://collector:4318): export traces "
        "of each send (needs pip install 'hubbub[otel]'); unset: no tracing",
    )
    otel_service_name: str | None = Field(
        default=None,
        description="service.name of the traces; default: OTEL_SERVICE_NAME, else hubbub",
    )

    # Checked here so a flag and its env var are refused alike, before anything starts
    # (``hubbub.startup`` turns each refusal into one line naming both).
    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in LOG_LEVELS:
            raise ValueError("not a log level")
        return level

    @field_validator("secret")
    @classmethod
    def _long_secret(cls, value: str | None) -> str | None:
        if value and len(value.encode()) < MIN_SECRET_BYTES:
            raise ValueError(
                f"the secret is {len(value.encode())} bytes; at least {MIN_SECRET_BYTES} "
                "are needed (RFC 7518 §3.2)"
            )
        return value

    @field_validator("database")
    @classmethod
    def _database_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = value.split("://", 1)[0].split("+", 1)[0] if "://" in value else ""
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("not a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("broker")
    @classmethod
    def _broker_scheme(cls, value: str) -> str:
        backend_of(value)  # ValueError naming the known schemes
        return value

    def shared_broker(self) -> bool:
        """Whether nodes share state through the broker URL (read as every backend reads it)."""
        return backend_of(self.broker) == "redis"

    def origins(self) -> list[str]:
        """Origins trusted besides our own: ``allowed_origins`` and the CORS allowlist (the
        operator's own front ends), for the WebSocket Origin check and the cross-site guard."""
        given = f"{self.allowed_origins},{self.cors_origins}"
        return [o.strip().rstrip("/") for o in given.split(",") if o.strip()]

    def cors_allowlist(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip())

    def server_keys(self) -> list[str]:
        return [k.strip() for k in (self.server_key or "").split(",") if k.strip()]

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
