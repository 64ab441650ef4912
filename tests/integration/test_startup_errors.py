"""Start-up as an operator meets it: every bad flag or env value, an unreachable database or
broker, a taken port is one line on stderr naming the setting (flag and env var), with exit
code 2 (configuration) or 3 (what it names is not there); no traceback, no secret. A server
that starts says once what it runs on, without printing a secret.

The table runs the real ``hubbub`` command, all cases at once (none starts a server: the
checks come before the app), so the whole file stays well under a minute."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hubbub.startup import redact_url
from tests.support import SECRET, Server, create_pg_database, drop_pg_database, free_port

HUBBUB = str(Path(sys.executable).with_name("hubbub"))
SHORT_SECRET = "tooshort-s3cr3t"
DB_PASSWORD = "pg-pa55word-xyz"
REDIS_PASSWORD = "redis-pa55word-xyz"
USER_PASSWORD = "Wr0ng" + "q" * 300  # over the 256-character limit


def _closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


CLOSED_PG = f"postgresql://hubbub:{DB_PASSWORD}@127.0.0.1:{_closed_port()}/hubbub"
CLOSED_REDIS = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{_closed_port()}/0"


@dataclass
class Case:
    name: str
    args: list[str]
    code: int
    names: str  # the setting the line must name ("--port / HUBBUB_PORT")
    env: dict[str, str] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()  # what must never appear
    command: str = "serve"


def flag_and_env(
    name: str,
    flag: str,
    value: str,
    code: int = 2,
    *,
    args: tuple[str, ...] = (),
    hidden: tuple[str, ...] = (),
) -> list[Case]:
    """The same bad value given as the flag and as its env var: the same line, both named."""
    env_name = "HUBBUB_" + flag.removeprefix("--").replace("-", "_").upper()
    names = f"{flag} / {env_name}"
    return [
        Case(f"{name}-flag", [flag, value, *args], code, names, hidden=hidden),
        Case(f"{name}-env", list(args), code, names, env={env_name: value}, hidden=hidden),
    ]


CASES: list[Case] = [
    *flag_and_env("auth", "--auth", "foo"),
    *flag_and_env("port-text", "--port", "abc"),
    *flag_and_env("port-range", "--port", "70000"),
    *flag_and_env("log-level", "--log-level", "loud"),
    *flag_and_env("short-secret", "--secret", SHORT_SECRET, hidden=(SHORT_SECRET,)),
    *flag_and_env(
        "database-scheme",
        "--database",
        f"mysql://root:{DB_PASSWORD}@127.0.0.1/chat",
        hidden=(DB_PASSWORD,),
    ),
    *flag_and_env("broker-scheme", "--broker", "kafka://127.0.0.1:9092"),
    *flag_and_env("workers-zero", "--workers", "0"),
    *flag_and_env("workers-no-broker", "--workers", "2"),
    *flag_and_env("ping-interval", "--ping-interval", "soon"),
    *flag_and_env("jwt-public-key", "--jwt-public-key", "/no/such/key.pem"),
    *flag_and_env(
        "webhook-url",
        "--webhook-url",
        "ftp://u:hookpass@example.com/x",
        args=("--webhook-secret", "whsec-123"),
        hidden=("hookpass", "whsec-123"),
    ),
    Case("webhook-no-secret", ["--webhook-url", "http://127.0.0.1:9/h"], 2, "--webhook-secret"),
    Case("trust-on-public-address", ["--auth", "trust", "--host", "0.0.0.0"], 2, "--auth"),
    Case("unknown-flag", ["--colour", "red"], 2, "--colour"),
    Case(
        "env-only",
        [],
        2,
        "error: HUBBUB_RESYNC_INTERVAL: 'soon'",
        {"HUBBUB_RESYNC_INTERVAL": "soon"},
    ),
    Case(
        "two-bad-values",
        ["--auth", "foo"],
        2,
        "--auth / HUBBUB_AUTH",
        {"HUBBUB_LOG_LEVEL": "loud"},
    ),
    # what the settings name is not there: exit code 3
    *flag_and_env("postgres-down", "--database", CLOSED_PG, 3, hidden=(DB_PASSWORD,)),
    *flag_and_env("redis-down", "--broker", CLOSED_REDIS, 3, hidden=(REDIS_PASSWORD,)),
    Case(
        "redis-down-workers",
        ["--workers", "2", "--broker", CLOSED_REDIS],
        3,
        "--broker / HUBBUB_BROKER",
        hidden=(REDIS_PASSWORD,),
    ),
    Case(
        "bad-auth-workers",
        ["--workers", "2", "--broker", "redis://127.0.0.1:6379/0", "--auth", "nobody"],
        2,
        "--auth / HUBBUB_AUTH",
    ),
    Case(
        "data-dir-not-writable", ["--data-dir", "/proc/hubbub"], 3, "--data-dir / HUBBUB_DATA_DIR"
    ),
    # the other commands that open the database
    Case(
        "migrate-postgres-down",
        ["--database", CLOSED_PG],
        3,
        "--database / HUBBUB_DATABASE",
        hidden=(DB_PASSWORD,),
        command="migrate",
    ),
    Case(
        "user-list-scheme",
        ["--database", f"mysql://root:{DB_PASSWORD}@h/x"],
        2,
        "--database / HUBBUB_DATABASE",
        hidden=(DB_PASSWORD,),
        command="user list",
    ),
    Case(
        "user-list-postgres-down",
        [],
        3,
        "--database / HUBBUB_DATABASE",
        env={"HUBBUB_DATABASE": CLOSED_PG},
        hidden=(DB_PASSWORD,),
        command="user list",
    ),
    Case(
        "user-create-long-password",
        ["carol", "--password", USER_PASSWORD],
        2,
        "password",
        hidden=(USER_PASSWORD[:40],),
        command="user create",
    ),
    Case(
        "user-create-weak-password",
        ["carol", "--password", "Wr0ng"],
        2,
        "password",
        hidden=("Wr0ng",),
        command="user create",
    ),
]


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str


# The table's cases run in one Python process that imports the ``hubbub`` command once and
# forks a child per case: each child is the real entry point (``hubbub.cli.main``) with its own
# argv, environment and stdout/stderr files, without paying the imports 40 times on a busy
# machine. A few cases also run through the installed ``hubbub`` script (below).
_FORK_RUNNER = """
import json, os, sys
import hubbub.cli, hubbub.startup, hubbub.store.sql, hubbub.server  # imported once
cases = json.load(sys.stdin)
results = []
base = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
for case in cases:
    out, err = case["out"], case["err"]
    pid = os.fork()
    if pid == 0:
        try:
            os.environ.clear()
            os.environ.update(base)
            os.environ.update(case["env"])
            os.chdir(case["cwd"])
            fd1 = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            fd2 = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd1, 1)
            os.dup2(fd2, 2)
            sys.argv = ["hubbub", *case["args"]]
            hubbub.cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    results.append(os.waitstatus_to_exitcode(status))
print(json.dumps(results))
"""


def _argv(case: Case, data_dir: Path) -> list[str]:
    args = [*case.command.split(), *case.args]
    if case.command == "serve" and "--port" not in case.args and "HUBBUB_PORT" not in case.env:
        args += ["--port", str(free_port())]
    if "--data-dir" not in case.args and case.command != "user list":
        args += ["--data-dir", str(data_dir / case.name)]
    return args


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Ran]:
    work = tmp_path_factory.mktemp("startup")
    jobs = [
        {
            "args": _argv(case, work),
            "env": case.env,
            "cwd": str(work),
            "out": str(work / f"{case.name}.out"),
            "err": str(work / f"{case.name}.err"),
        }
        for case in CASES
    ]
    done = subprocess.run(
        [sys.executable, "-c", _FORK_RUNNER],
        input=json.dumps(jobs).encode(),
        env=_clean_env(),
        capture_output=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    codes = json.loads(done.stdout)
    return {
        case.name: Ran(code, Path(str(job["out"])).read_text(), Path(str(job["err"])).read_text())
        for case, job, code in zip(CASES, jobs, codes, strict=True)
    }


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.name in ("auth-flag", "port-text-env", "postgres-down-env")],
    ids=lambda c: c.name,
)
def test_the_installed_command_says_the_same(
    case: Case, results: dict[str, Ran], tmp_path: Path
) -> None:
    """The installed ``hubbub`` script, as an operator runs it, prints what the table saw."""
    done = subprocess.run(
        [HUBBUB, *_argv(case, tmp_path)],
        env={**_clean_env(), **case.env},
        capture_output=True,
        timeout=100,
    )
    assert done.returncode == case.code
    assert done.stderr.decode().splitlines() == results[case.name].stderr.splitlines()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_setting_is_one_line_naming_it(case: Case, results: dict[str, Ran]) -> None:
    ran = results[case.name]
    lines = ran.stderr.splitlines()
    assert ran.code == case.code, ran.stderr
    assert len(lines) == 1 and lines[0].strip(), ran.stderr
    assert lines[0].startswith("error: ")
    assert case.names in lines[0]
    assert "Traceback" not in ran.stderr + ran.stdout
    for secret in case.hidden:
        assert secret not in ran.stderr + ran.stdout


def test_debug_log_level_shows_the_traceback(tmp_path: Path) -> None:
    env = _clean_env()
    done = subprocess.run(
        [
            HUBBUB,
            "serve",
            "--log-level",
            "debug",
            "--database",
            CLOSED_PG,
            "--data-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" in done.stderr.decode()


def test_a_taken_port_is_exit_code_3(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
        done = subprocess.run(
            [HUBBUB, "serve", "--port", str(port), "--data-dir", str(tmp_path)],
            env=env,
            capture_output=True,
            timeout=60,
        )
    lines = done.stderr.decode().splitlines()
    assert done.returncode == 3
    assert len(lines) == 1
    assert "--port / HUBBUB_PORT" in lines[0] and "already in use" in lines[0]


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.split("@", 1)
    return f"{scheme}://{userinfo.split(':')[0]}:{password}@{host}"


def test_migrate_prints_the_url_without_its_password(pg_url: str, tmp_path: Path) -> None:
    url = _with_password(pg_url, DB_PASSWORD)  # the test server trusts; the password is unused
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUBBUB_")}
    done = subprocess.run(
        [HUBBUB, "migrate", "--database", url], env=env, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode() + done.stderr.decode()
    assert DB_PASSWORD not in out
    assert f"migrated {redact_url(url)}" in out
    assert ":***@127.0.0.1" in out


def test_urls_are_shown_without_passwords() -> None:
    assert redact_url("postgresql://u:pw@db:5432/chat") == "postgresql://u:***@db:5432/chat"
    assert redact_url("redis://:pw@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact_url("rediss://default:pw@cache/0") == "rediss://default:***@cache/0"
    assert (
        redact_url("sqlite:////var/lib/hubbub/hubbub.db") == "sqlite:////var/lib/hubbub/hubbub.db"
    )
    assert "pw" not in redact_url("postgresql://db/chat?password=pw&sslmode=require")
    assert redact_url("memory://") == "memory://"


def _summary(server: Server) -> list[str]:
    """The ``hubbub`` logger's INFO lines, in the text format: ``<ts> INFO hubbub <message>``."""
    found = []
    for line in server.log().splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[1:3] == ["INFO", "hubbub"]:
            found.append(parts[3])
    return found


def test_start_up_summary_reports_a_generated_secret_without_printing_it(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", auth="jwt", env={"HUBBUB_SECRET": ""})
    server.start()
    try:
        data_dir = (tmp_path / "data").resolve()
        secret = (data_dir / "secret.key").read_text().strip()
        lines = _summary(server)
        assert (
            lines[0].startswith("Hubbub ")
            and f"serving http://127.0.0.1:{server.port}/" in lines[0]
        )
        assert "auth: jwt" in lines
        assert f"database: SQLite {data_dir / 'hubbub.db'}" in lines
        assert "broker: memory:// (this process only)" in lines
        assert f"data directory: {data_dir}" in lines
        assert any(
            line.startswith("secret: generated this start") and str(data_dir / "secret.key") in line
            for line in lines
        )
        assert len([line for line in lines if not line.startswith("accepting")]) <= 8
        assert secret not in server.log()
    finally:
        server.stop()
    again = Server(tmp_path / "data", auth="jwt", env={"HUBBUB_SECRET": ""})
    again.log_path = tmp_path / "again.log"
    again.start()
    try:
        assert f"secret: loaded from {data_dir / 'secret.key'}" in _summary(again)
        assert secret not in again.log()
    finally:
        again.stop()


def test_start_up_summary_on_postgresql_and_redis_hides_passwords(
    pg_url: str, tmp_path: Path
) -> None:
    from tests.support import REDIS_URL, redis_available

    redis_available()
    url = _with_password(pg_url, DB_PASSWORD)
    server = Server(
        tmp_path / "data",
        auth="jwt",
        env={"HUBBUB_DATABASE": url, "HUBBUB_BROKER": REDIS_URL, "HUBBUB_SECRET": SECRET},
    )
    server.host = "127.0.0.1"  # where the test reaches it
    server.args = ["--host", "0.0.0.0"]
    server.start()
    try:
        lines = _summary(server)
        assert f"serving http://127.0.0.1:{server.port}/ (listening on every interface" in lines[0]
        assert f"database: {redact_url(url)}" in lines
        assert f"broker: {REDIS_URL} (shared by nodes)" in lines
        assert "secret: given (--secret / HUBBUB_SECRET)" in lines
        log = server.log()
        assert DB_PASSWORD not in log and SECRET not in log
    finally:
        server.stop()
