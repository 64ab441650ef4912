"""The ``hubbub`` command: serve, migrate, user create."""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hubbub.config import Settings

app = typer.Typer(
    help="Hubbub, a real-time chat server.", no_args_is_help=True, add_completion=False
)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
app.add_typer(user_app, name="user")

Opt = typer.Option


def _print_version(value: bool) -> None:
    if value:
        from hubbub import __version__

        typer.echo(f"hubbub {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        Opt("--version", help="print the version and exit", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    """Hubbub, a real-time chat server; its command-line client; its admin commands."""


def _settings(**given: Any) -> Settings:
    """Flags override HUBBUB_* env vars, which override the defaults; a bad one is a one-line
    error naming the flag and the env var (``hubbub.startup``)."""
    from hubbub.startup import load_settings

    return load_settings(**given)


@app.command()
def serve(
    host: Annotated[str | None, Opt(help="bind address [HUBBUB_HOST, 127.0.0.1]")] = None,
    port: Annotated[int | None, Opt(help="port [HUBBUB_PORT, 8000]")] = None,
    data_dir: Annotated[
        Path | None, Opt(help="data directory [HUBBUB_DATA_DIR, ./hubbub-data]")
    ] = None,
    database: Annotated[
        str | None, Opt(help="database URL [HUBBUB_DATABASE, SQLite in data dir]")
    ] = None,
    broker: Annotated[
        str | None, Opt(help="memory:// or redis://host:6379/0 [HUBBUB_BROKER, memory://]")
    ] = None,
    workers: Annotated[
        int | None, Opt(help="processes sharing the port; needs --broker redis:// [1]")
    ] = None,
    auth: Annotated[str | None, Opt(help="jwt | trust [HUBBUB_AUTH, jwt]")] = None,
    force_trust: Annotated[
        bool | None, Opt("--force-trust", help="allow trust mode on a public address")
    ] = None,
    secret: Annotated[
        str | None, Opt(help="JWT secret [HUBBUB_SECRET, generated and kept in the data dir]")
    ] = None,
    log_level: Annotated[
        str | None, Opt(help="debug | info | warning | error [HUBBUB_LOG_LEVEL, info]")
    ] = None,
    log_format: Annotated[
        str | None, Opt(help="text | json: log line format [HUBBUB_LOG_FORMAT, text]")
    ] = None,
    ping_interval: Annotated[
        float | None, Opt(help="seconds between SSE keep-alive pings [15]")
    ] = None,
    presence_grace: Annotated[
        float | None, Opt(help="seconds before a user with no connection is offline [10]")
    ] = None,
    stale_timeout: Annotated[
        float | None, Opt(help="drop a stream whose peer acknowledges nothing this long [300]")
    ] = None,
    typing_timeout: Annotated[
        float | None, Opt(help="seconds before an unrenewed typing indicator ends [5]")
    ] = None,
    max_upload_bytes: Annotated[
        int | None, Opt(help="largest file upload in bytes [26214400 = 25 MiB]")
    ] = None,
    files: Annotated[
        str | None,
        Opt(
            help="local | database | s3://bucket/prefix [HUBBUB_FILES, database with "
            "PostgreSQL, else local]"
        ),
    ] = None,
    files_endpoint: Annotated[
        str | None,
        Opt(help="S3 endpoint URL [HUBBUB_FILES_ENDPOINT, AWS_ENDPOINT_URL, else AWS]"),
    ] = None,
    rate_limit_per_second: Annotated[
        float | None, Opt(help="sends per second per user [10]")
    ] = None,
    rate_limit_burst: Annotated[int | None, Opt(help="send burst per user [20]")] = None,
    retention_days: Annotated[
        int | None, Opt(help="delete messages older than this [keep forever]")
    ] = None,
    metrics_token: Annotated[str | None, Opt(help="require this Bearer token on /metrics")] = None,
    max_streams_per_user: Annotated[
        int | None, Opt(help="open streams per user; the next gets 429 [100; 0: no limit]")
    ] = None,
    max_pending_streams: Annotated[
        int | None, Opt(help="streams being set up at once; beyond it 503 [500; 0: no limit]")
    ] = None,
    allowed_hosts: Annotated[
        str | None,
        Opt(help="trust mode: Host names answered besides the bound address and localhost"),
    ] = None,
    cors_origins: Annotated[
        str | None,
        Opt(help="comma-separated origins that get CORS headers [HUBBUB_CORS_ORIGINS, none]"),
    ] = None,
    server_key: Annotated[
        str | None,
        Opt(help="server API key(s), comma-separated for rotation [HUBBUB_SERVER_KEY, off]"),
    ] = None,
    jwt_public_key: Annotated[
        str | None,
        Opt(help="your identity service's public key(s): PEM, or a PEM/JWKS file path"),
    ] = None,
    jwt_audience: Annotated[
        str | None, Opt(help="required 'aud' of tokens signed with --jwt-public-key")
    ] = None,
    webhook_url: Annotated[
        str | None, Opt(help="POST every stored change here [HUBBUB_WEBHOOK_URL, off]")
    ] = None,
    webhook_secret: Annotated[
        str | None, Opt(help="HMAC-SHA256 key for Hubbub-Signature [HUBBUB_WEBHOOK_SECRET]")
    ] = None,
    otel_endpoint: Annotated[
        str | None,
        Opt(help="OTLP/HTTP collector URL for traces [HUBBUB_OTEL_ENDPOINT, off]"),
    ] = None,
    otel_service_name: Annotated[
        str | None,
        Opt(help="traces' service.name [HUBBUB_OTEL_SERVICE_NAME, OTEL_SERVICE_NAME, hubbub]"),
    ] = None,
) -> None:
    """Run the server (SQLite + in-memory fan-out unless told otherwise)."""
    from hubbub.server import serve as run
    from hubbub.startup import check_serve

    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database=database,
        broker=broker,
        workers=workers,
        auth=auth,
        force_trust=force_trust,
        secret=secret,
        log_level=log_level,
        log_format=log_format,
        ping_interval=ping_interval,
        presence_grace=presence_grace,
        stale_timeout=stale_timeout,
        typing_timeout=typing_timeout,
        max_upload_bytes=max_upload_bytes,
        files=files,
        files_endpoint=files_endpoint,
        rate_limit_per_second=rate_limit_per_second,
        rate_limit_burst=rate_limit_burst,
        retention_days=retention_days,
        metrics_token=metrics_token,
        max_streams_per_user=max_streams_per_user,
        max_pending_streams=max_pending_streams,
        allowed_hosts=allowed_hosts,
        cors_origins=cors_origins,
        server_key=server_key,
        jwt_public_key=jwt_public_key,
        jwt_audience=jwt_audience,
        webhook_url=webhook_url,
        webhook_secret=webhook_secret,
        otel_endpoint=otel_endpoint,
        otel_service_name=otel_service_name,
    )
    check_serve(settings)  # a bad key, webhook, file store or tracing stops here, not in a worker
    run(settings)


@app.command()
def migrate(
    data_dir: Annotated[Path | None, Opt(help="data directory")] = None,
    database: Annotated[str | None, Opt(help="database URL")] = None,
) -> None:
    """Apply database migrations (the server also does this at start)."""
    from hubbub.startup import reach_database, redact_url

    settings = _settings(data_dir=data_dir, database=database)
    reach_database(settings)
    typer.echo(f"migrated {redact_url(settings.database or settings.database_url())}")


@user_app.command("create")
def user_create(
    name: str,
    password: Annotated[str | None, Opt(help="password (prompted when absent)")] = None,
    data_dir: Annotated[Path | None, Opt(help="data directory")] = None,
    database: Annotated[str | None, Opt(help="database URL")] = None,
) -> None:
    """Create a user who can log in with a password."""
    from pydantic import ValidationError

    from hubbub.api.schemas import Register
    from hubbub.auth.accounts import create_account
    from hubbub.auth.passwords import password_weakness
    from hubbub.errors import Conflict
    from hubbub.startup import ConfigError, describe_validation, open_store

    settings = _settings(data_dir=data_dir, database=database)
    if password is None:
        password = (
            getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
        )
    try:
        name = Register(username=name, password=password).username
    except ValidationError as exc:  # its text would echo the password: said field by field
        first = describe_validation(exc)[0]
        raise ConfigError(None, f"{first.setting}: {first.message}") from None
    weakness = password_weakness(password, name)
    if weakness is not None:
        typer.echo(f"error: {weakness}", err=True)
        raise typer.Exit(2)

    async def run() -> str:
        store = await open_store(settings)
        try:
            user = await create_account(store, name, password)
            return user.id
        except Conflict:
            raise typer.Exit(1) from None
        finally:
            await store.close()

    try:
        user_id = asyncio.run(run())
    except typer.Exit:
        typer.echo(f"error: username {name!r} is taken", err=True)
        raise
    typer.echo(f"created user {name} ({user_id})")


def _register_more() -> None:
    """The client commands (``cli_client``) and the admin ones (``cli_admin``)."""
    from hubbub import cli_admin, cli_client

    cli_client.register(app)
    cli_admin.register(user_app, app)


_register_more()


def main() -> None:
    from hubbub.startup import run_cli

    run_cli(app)


if __name__ == "__main__":
    main()
