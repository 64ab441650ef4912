"""Start-up checks, the start-up summary, and one-line errors for every command.

An operator who mistypes a flag or points Hubbub at a database that is down gets one line on
stderr naming the setting (flag and env var) and what to do, and an exit code a supervisor can
act on: 2 for a configuration mistake (fix the command line or the environment), 3 for the
world not being as configured (database or broker unreachable, port taken, data directory not
writable). A traceback only with ``--log-level debug``. Nothing printed here ever carries a
secret: URLs are shown with their password as ``***``, secret values are never echoed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import re
import socket
import sys
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from pathlib import Path

    import typer
    from pydantic import ValidationError

    from hubbub.config import Settings
    from hubbub.store.sql import SqlStore

log = logging.getLogger("hubbub")

CONFIG = 2  # exit code: fix the flags or the environment
RUNTIME = 3  # exit code: something the settings name is not there (database, broker, port)

# Values never echoed back, whatever is wrong with them.
SECRET_FIELDS = frozenset({"secret", "server_key", "webhook_secret", "metrics_token", "password"})
URL_FIELDS = frozenset({"database", "broker", "webhook_url"})
_SECRET_QUERY_KEYS = ("password", "secret", "token", "key")

_HINTS: dict[str, str] = {
    "auth": "use jwt (accounts and tokens) or trust (local development only)",
    "log_level": "use debug, info, warning or error",
    "port": "give a port from 1 to 65535 (0: any free port)",
    "secret": "make one with python -c 'import secrets; print(secrets.token_urlsafe(48))', "
    "or leave it unset to have one generated and kept in the data directory",
    "database": "use sqlite:///path/to/hubbub.db or postgresql://user@host/db",
    "broker": "use memory:// (one process) or redis://host:6379/0",
    "workers": "give 1 or more",
}


class ConfigError(Exception):
    """A setting that cannot work: exit code 2, one line naming it."""

    code = CONFIG

    def __init__(self, setting: str | None, message: str) -> None:
        super().__init__(message)
        self.setting = setting
        self.message = message

    def line(self) -> str:
        where = f"{option_names(self.setting)}: " if self.setting else ""
        return one_line(f"error: {where}{self.message}")


class StartupFailure(ConfigError):
    """The settings are well-formed but what they name is not there: exit code 3."""

    code = RUNTIME


def option_names(field: str) -> str:
    """``port`` → ``--port / HUBBUB_PORT``: the places an operator sets it (only the env var
    for a setting ``hubbub serve`` has no flag for)."""
    env = f"HUBBUB_{field.upper()}"
    return f"--{field.replace('_', '-')} / {env}" if field in _serve_flags() else env


@functools.cache
def _serve_flags() -> frozenset[str]:
    import inspect

    from hubbub.cli import serve

    return frozenset(inspect.signature(serve).parameters)


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]+@")


def one_line(text: str, limit: int = 600) -> str:
    """Whitespace folded, any ``scheme://user:password@`` starred, long text cut."""
    flat = _URL_PASSWORD.sub(r"\1***@", " ".join(text.split()))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def redact_url(url: str) -> str:
    """``postgresql://u:pw@h/db`` → ``postgresql://u:***@h/db``; ``redis://:pw@h`` →
    ``redis://:***@h``; a password/secret/token in the query string is starred too."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None and not parts.query:
        return url  # nothing to hide (and sqlite:////abs/path keeps its slashes)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower().endswith(_SECRET_QUERY_KEYS) for k, _ in pairs):
            starred = [
                (k, "***" if k.lower().endswith(_SECRET_QUERY_KEYS) else v) for k, v in pairs
            ]
            query = urlencode(starred, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def shown(field: str, value: object) -> str:
    """How a rejected value is echoed: never a secret, URLs redacted, long text cut."""
    if field in SECRET_FIELDS:
        return "(value not shown)"
    text = str(value)
    if field in URL_FIELDS:
        text = redact_url(text)
    if len(text) > 80:
        text = text[:77] + "…"
    return repr(text)


def scrub(text: str, settings: Settings | None) -> str:
    """Remove every secret the settings hold from ``text`` (an exception's message)."""
    if settings is None:
        return text
    for url in (settings.database, settings.broker, settings.webhook_url):
        if url:
            password = urlsplit(url).password if "://" in url else None
            if password:
                text = text.replace(password, "***")
            text = text.replace(url, redact_url(url))
    for field in ("secret", "server_key", "webhook_secret", "metrics_token"):
        value = getattr(settings, field)
        if value:
            text = text.replace(value, "***")
    return text


_PYDANTIC_MESSAGES = {
    "int_parsing": "is not a whole number",
    "int_from_float": "is not a whole number",
    "float_parsing": "is not a number",
    "bool_parsing": "is not true or false",
    "missing": "is required",
}


def describe_validation(exc: ValidationError) -> list[ConfigError]:
    """Each pydantic error of Settings (or of a CLI model) as one :class:`ConfigError`."""
    found: list[ConfigError] = []
    for error in exc.errors(include_url=False, include_input=True):
        loc = error.get("loc") or ()
        field = str(loc[0]) if loc else ""
        kind = error.get("type", "")
        value = shown(field, error.get("input")) if "input" in error else ""
        if kind in _PYDANTIC_MESSAGES:
            what = f"{value} {_PYDANTIC_MESSAGES[kind]}"
        elif kind == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            what = f"{value} is not {expected.replace(chr(39), '')}"
        elif kind == "value_error":
            what = str(error.get("msg", "")).removeprefix("Value error, ")
            if value and field not in SECRET_FIELDS:
                what = f"{value}: {what}"
        else:
            what = f"{value} is invalid: {error.get('msg', '')}".strip()
        hint = _HINTS.get(field)
        if hint and hint not in what:
            what = f"{what}; {hint}"
        found.append(ConfigError(field or None, what.strip()))
    return found


def joined(errors: list[ConfigError]) -> ConfigError:
    """Several bad settings still make one line: the first error, then the others' text."""
    first = errors[0]
    if len(errors) == 1:
        return first
    rest = "; ".join(e.line().removeprefix("error: ") for e in errors[1:])
    return ConfigError(first.setting, f"{first.message}; also {rest}")


def load_settings(**given: Any) -> Settings:
    """Settings from flags (``given``; None: not given), HUBBUB_* env vars and defaults, or a
    :class:`ConfigError` naming every bad one."""
    from pydantic import ValidationError

    from hubbub.config import Settings

    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        raise joined(describe_validation(exc)) from None


def check_trust(settings: Settings) -> None:
    from hubbub.config import is_loopback

    if settings.auth == "trust" and not is_loopback(settings.host) and not settings.force_trust:
        raise ConfigError(
            "auth",
            f"refusing --auth trust on non-loopback address {settings.host}: anyone could act "
            "as anyone. Use --auth jwt, bind 127.0.0.1, or pass --force-trust if you mean it.",
        )


def check_workers(settings: Settings) -> None:
    if settings.workers > 1 and not settings.shared_broker():
        raise ConfigError(
            "workers",
            f"--workers {settings.workers} needs a broker all processes share, e.g. "
            "--broker redis://127.0.0.1:6379/0 (with memory:// each process would only see "
            "its own messages)",
        )


def check_serve(settings: Settings) -> None:
    """What ``hubbub serve`` refuses before starting anything (exit code 2)."""
    check_trust(settings)
    check_workers(settings)
    from hubbub.files.select import files_config

    try:
        files_config(settings)
    except ValueError as exc:  # its message names --files / HUBBUB_FILES already
        raise ConfigError(None, str(exc)) from None
    if settings.otel_endpoint:  # the extra missing, or a bad URL
        from hubbub.tracing import check_available, check_endpoint

        try:
            check_endpoint(settings.otel_endpoint)
            check_available()
        except ValueError as exc:
            message = re.sub(r"^--otel-endpoint ", "", str(exc))
            raise ConfigError("otel_endpoint", message) from None
    if settings.jwt_public_key:  # a bad key stops here, not in a worker's start-up
        from hubbub.auth.external_keys import load_public_keys

        try:
            load_public_keys(settings.jwt_public_key)
        except ValueError as exc:
            message = (
                str(exc)
                .replace("--jwt-public-key ", "the key ")
                .replace("--jwt-public-key", "the key")
            )
            raise ConfigError("jwt_public_key", message) from None
    if settings.webhook_url:
        from hubbub.webhooks.worker import check_settings

        try:
            check_settings(settings.webhook_url, settings.webhook_secret)
        except ValueError as exc:
            if "--webhook-secret" in str(exc):  # the URL is fine; the key is missing
                raise ConfigError(
                    "webhook_secret",
                    "required with --webhook-url: the key each POST's Hubbub-Signature is "
                    "made with (receivers check it), e.g. 32 random bytes",
                ) from None
            message = re.sub(r"^--webhook-url ", "", str(exc))
            message = message.replace(
                repr(settings.webhook_url), repr(redact_url(settings.webhook_url))
            )
            raise ConfigError("webhook_url", message) from None


SecretSource = Literal["given", "loaded", "generated"]


def prepare_data_dir(settings: Settings) -> SecretSource:
    """Make the data directory and resolve the secret (exit code 3 when it cannot be written)."""
    if settings.secret:
        source: SecretSource = "given"
    else:
        source = "loaded" if (settings.data_dir / "secret.key").exists() else "generated"
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if not os.access(settings.data_dir, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, "permission denied")
        settings.resolved_secret()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StartupFailure(
            "data_dir",
            f"cannot write to {settings.data_dir.resolve()}: {reason} "
            "(create it with write permission for this user, or point it elsewhere)",
        ) from None
    return source


async def _reach_broker(url: str) -> None:
    from hubbub.backend_url import connect

    redis = connect(url, retries=0)
    try:
        await asyncio.wait_for(redis.ping(), 5)
    finally:
        await redis.aclose()


def _reason(exc: BaseException, settings: Settings | None) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = re.sub(r"^\([\w.]+\)\s*", "", text)  # SQLAlchemy's "(asyncpg.…Error)" prefix
    name = type(exc).__name__
    return scrub(f"{name}: {text}" if text else name, settings)


def database_failure(settings: Settings, exc: BaseException) -> StartupFailure:
    """The store would not open: one line naming --database (or the data dir for SQLite)."""
    if settings.database is None:
        where = f"SQLite {settings.data_dir.resolve() / 'hubbub.db'}"
        return StartupFailure(
            "data_dir",
            f"cannot open {where}: {_reason(exc, settings)} (check the data directory is "
            "writable and the file is a Hubbub database)",
        )
    return StartupFailure(
        "database",
        f"cannot use {redact_url(settings.database)}: {_reason(exc, settings)} "
        "(is the database server running and reachable, and are the user, password and "
        "database name right?)",
    )


async def open_store(settings: Settings) -> SqlStore:
    """A started store (migrated to head) for a command, or :func:`database_failure`."""
    from hubbub.store.sql import SqlStore

    store = SqlStore(settings.database_url(), sqlite_synchronous=settings.sqlite_synchronous)
    try:
        await store.start()
    except Exception as exc:
        with contextlib.suppress(Exception):
            await store.close()
        raise database_failure(settings, exc) from exc
    return store


def reach_database(settings: Settings) -> None:
    """Open the store once (and migrate it, before any worker races to): exit code 3 if the
    database is not there."""

    async def run() -> None:
        store = await open_store(settings)
        await store.close()

    asyncio.run(run())


def reach_files(settings: Settings) -> None:
    """An object store's bucket must be there at start (exit code 3), not at the first upload."""
    from hubbub.files.select import file_store, files_config

    if files_config(settings).kind != "s3":
        return
    store = file_store(settings)

    async def run() -> None:
        try:
            await store.start()
        finally:
            await store.close()

    try:
        asyncio.run(run())
    except RuntimeError as exc:
        message = re.sub(r"^--files \S+: ", "", str(exc))
        raise StartupFailure("files", message) from None


def reach_broker(settings: Settings) -> None:
    if not settings.shared_broker():
        return
    try:
        asyncio.run(_reach_broker(settings.broker))
    except Exception as exc:
        raise StartupFailure(
            "broker",
            f"cannot reach {redact_url(settings.broker)}: {_reason(exc, settings)} "
            "(is Redis running and reachable, and is the password right?)",
        ) from exc


def listen(settings: Settings) -> socket.socket:
    """The listening socket, bound before the app starts: a taken port is exit code 3."""
    host = settings.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, settings.port))
        sock.listen(settings.backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupFailure(
                "port",
                f"port {settings.port} on {host} is already in use (stop what listens there, "
                "or choose another port)",
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise StartupFailure(
                "port",
                f"not allowed to listen on port {settings.port} (ports below 1024 need "
                "privileges; choose a port above 1024)",
            ) from None
        raise StartupFailure(
            "host",
            f"cannot listen on {host}:{settings.port}: {exc.strerror or exc} "
            "(give an address of this machine, e.g. 127.0.0.1 or 0.0.0.0)",
        ) from None
    sock.set_inheritable(True)
    return sock


def summary(settings: Settings, sock: socket.socket, secret: SecretSource) -> list[str]:
    """What an operator wants to see once at start: where to go, and what it runs on."""
    from hubbub import __version__

    port = sock.getsockname()[1]
    host = settings.host
    everywhere = host in ("0.0.0.0", "::", "")
    if host in ("0.0.0.0", ""):
        visit = "127.0.0.1"
    elif host == "::":
        visit = "[::1]"
    else:
        visit = f"[{host}]" if ":" in host else host
    first = f"Hubbub {__version__} serving http://{visit}:{port}/"
    if everywhere:
        first += (
            f" (listening on every interface, {host or '0.0.0.0'}:{port}: from other "
            "machines use this machine's name or address)"
        )
    if settings.workers > 1:
        first += f", {settings.workers} worker processes"
    data_dir = settings.data_dir.resolve()
    if settings.database:
        database = redact_url(settings.database)
    else:
        database = f"SQLite {data_dir / 'hubbub.db'}"
    broker = redact_url(settings.broker)
    broker += " (this process only)" if not settings.shared_broker() else " (shared by nodes)"
    auth: str = settings.auth
    if auth == "trust":
        auth += " (anyone can act as anyone: local development only)"
    key = data_dir / "secret.key"
    secret_line = {
        "given": "secret: given (--secret / HUBBUB_SECRET)",
        "loaded": f"secret: loaded from {key}",
        "generated": f"secret: generated this start, kept in {key} (mode 0600; keep it to "
        "keep sessions valid, share it with other nodes)",
    }[secret]
    return [
        first,
        f"auth: {auth}",
        f"database: {database}",
        f"broker: {broker}",
        f"files: {_files_line(settings, data_dir)}",
        f"data directory: {data_dir}",
        secret_line,
    ]


def _files_line(settings: Settings, data_dir: Path) -> str:
    from hubbub.files.select import files_config

    config = files_config(settings)
    if config.kind == "s3":
        endpoint = settings.files_endpoint or os.environ.get("AWS_ENDPOINT_URL") or "AWS"
        return f"S3 bucket {config.bucket!r}, prefix {config.prefix!r} at {redact_url(endpoint)}"
    if config.kind == "database":
        return "in the database (shared by every node)"
    return f"local disk, {data_dir / 'files'}"


def log_summary(settings: Settings, sock: socket.socket, secret: SecretSource) -> None:
    for line in summary(settings, sock, secret):
        log.info("%s", line)


# ---- the command-line entry point -------------------------------------------------------


def _debug(args: list[str]) -> bool:
    for i, arg in enumerate(args):
        if arg == "--log-level" and i + 1 < len(args):
            return args[i + 1].lower() == "debug"
        if arg.startswith("--log-level="):
            return arg.split("=", 1)[1].lower() == "debug"
    return os.environ.get("HUBBUB_LOG_LEVEL", "").lower() == "debug"


def _given_value(param: Any, args: list[str]) -> str | None:
    opts: list[str] = list(getattr(param, "opts", []))
    for i, arg in enumerate(args):
        for opt in opts:
            if arg == opt and i + 1 < len(args):
                return args[i + 1]
            if arg.startswith(opt + "="):
                return arg.split("=", 1)[1]
    return None


def _usage_error(exc: typer.TyperException, args: list[str]) -> ConfigError:
    """Typer's (vendored click's) usage errors, one line, in the same words as the settings'."""
    import typer as typer_module

    from hubbub.config import Settings

    param = getattr(exc, "param", None)
    name = getattr(param, "name", None)
    if isinstance(exc, typer_module.BadParameter) and isinstance(name, str):
        value = _given_value(param, args)
        kind = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        said = {int: "is not a whole number", float: "is not a number"}.get(kind or str)
        if said is None:
            said = f"is invalid: {exc.format_message()}"
        what = f"{shown(name, value)} {said}" if value is not None else said
        if name in _HINTS:
            what = f"{what}; {_HINTS[name]}"
        if name in Settings.model_fields:
            return ConfigError(name, what)
        opts = "/".join(getattr(param, "opts", [name]))
        return ConfigError(None, f"{opts}: {what}")
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "hubbub"
    return ConfigError(None, f"{exc.format_message()} (see {command} --help)")


def run_cli(app: typer.Typer, args: list[str] | None = None) -> None:
    """Run the ``hubbub`` command with every error as one line and an exit code."""
    import typer as typer_module

    argv = list(sys.argv[1:] if args is None else args)
    debug = _debug(argv)
    command = typer_module.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="hubbub", standalone_mode=False)
    except ConfigError as exc:
        if debug:
            raise
        print(exc.line(), file=sys.stderr)
        sys.exit(exc.code)
    except typer_module.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except typer_module.TyperException as exc:
        print(_usage_error(exc, argv).line(), file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        print(
            one_line(f"error: {_reason(exc, None)} (run with --log-level debug for details)"),
            file=sys.stderr,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
