"""Schemathesis over the live ``/openapi.json``: every operation, both auth modes.

A real ``hubbub serve`` process per mode (``tests/support.py``), the schema loaded from the
server itself, and Hypothesis-generated requests (valid and invalid, schemathesis's positive
and negative modes) for every operation:

* ``jwt`` mode signed in (a registered user's Bearer token) and anonymous (no credentials);
* ``trust`` mode with a ``User-ID`` header.

Every response must pass: no 5xx (``not_a_server_error``), a documented status, content type,
headers and body (``status_code_conformance``, ``content_type_conformance``,
``response_headers_conformance``, ``response_schema_conformance``), every error in the one
documented shape (``hubbub_error_shape``); and anonymous calls to a protected route never
succeed. Half the cases aim at things that exist (the fuzz user's room, message, file) rather
than random ids, so the 2xx answers are exercised as well as the 404s.

``HUBBUB_FUZZ_EXAMPLES`` sets the examples per operation (default 25: the suite's bounded run);
``HUBBUB_FUZZ_REPORT=path`` writes the figures of the run there (``make fuzz``).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import PASSWORD, Server

EXAMPLES = int(os.environ.get("HUBBUB_FUZZ_EXAMPLES", "25"))
REPORT = os.environ.get("HUBBUB_FUZZ_REPORT")
STREAM_READ_SECONDS = 1.5  # an open SSE stream is read this long (or until its first event)
REQUEST_TIMEOUT = 15.0

pytestmark = pytest.mark.timeout(max(600, EXAMPLES * 60))

ERROR_CODE = re.compile(r"[a-z][a-z0-9_]*")
STREAMS = {"/chat/events", "/chat/room/{room_id}/events"}


@schemathesis.check
def hubbub_error_shape(ctx: CheckContext, response: schemathesis.Response, case: Any) -> bool:
    """API.md "Conventions": every error is ``{"error": {"code", "message", "details"?}}`` with
    a snake_case code and a sentence, as JSON; a 429 says when to come back."""
    if response.status_code < 400:
        return True
    media = response.headers.get("content-type", [""])[0].split(";")[0].strip()
    assert media == "application/json", f"error with Content-Type {media!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict) and set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err, dict) and {"code", "message"} <= set(err), body
    assert set(err) <= {"code", "message", "details"}, body
    assert isinstance(err["code"], str) and ERROR_CODE.fullmatch(err["code"]), body
    assert isinstance(err["message"], str) and err["message"].strip(), body
    if response.status_code == 429:
        assert response.headers.get("retry-after"), "429 without Retry-After"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    hubbub_error_shape,
]


# The servers ----------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one run did, for the report."""

    operations: set[str] = field(default_factory=set)
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0  # waiting for answers
    wall: float = 0.0  # the whole run: generating, sending, checking

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


TALLIES: dict[str, Tally] = {}


@dataclass
class Live:
    """A server under fuzzing, the identity its signed-in run uses, and things that exist."""

    server: Server
    mode: str
    headers: dict[str, str]
    known: dict[str, str]
    username: str = ""

    def fresh_headers(self) -> dict[str, str]:
        """A session of its own (for ``/auth/logout``, which would end the shared one)."""
        if self.mode != "jwt":
            return dict(self.headers)
        r = httpx.post(
            self.server.url + "/auth/login",
            json={"username": self.username, "password": PASSWORD},
            timeout=REQUEST_TIMEOUT,
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


SERVER_ENV = {
    # Fuzzing is not abuse: no send limit in the way (429 is still documented and checked).
    "HUBBUB_RATE_LIMIT_BURST": "1000000",
    "HUBBUB_RATE_LIMIT_PER_SECOND": "1000000",
    "HUBBUB_AUTH_FAILURES_PER_ADDRESS": "1000000",
    "HUBBUB_ACCESS_TOKEN_TTL": "86400",
    "HUBBUB_LOG_LEVEL": "warning",
}


def _seed(live: Live, http: httpx.Client) -> None:
    """A room the user is in, a message in it, a file: the ids the cases may aim at."""
    room = "fuzz-room"
    h = live.headers
    r = http.post("/chat/rooms", headers=h, json={"name": "Fuzz", "id": room})
    assert r.status_code in (200, 201), r.text
    r = http.post("/chat/messages", headers=h, json={"room_id": room, "message": "fuzz me"})
    assert r.status_code == 201, r.text
    message = r.json()["message"]
    r = http.post(
        f"/chat/room/{room}/files",
        headers=h,
        files={"file": ("notes.txt", b"hello", "text/plain")},
    )
    assert r.status_code == 201, r.text
    live.known.update(
        room_id=room,
        message_id=message["id"],
        user_id=message["user_id"],
        file_id=r.json()["message"]["file"]["id"],
        name="notes.txt",
        reaction="👍",
    )


def _start(tmp: Path, mode: str) -> Iterator[Live]:
    server = Server(tmp, auth=mode, env=SERVER_ENV).start()
    try:
        with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT) as http:
            if mode == "jwt":
                name = "fuzzer"
                r = http.post("/auth/register", json={"username": name, "password": PASSWORD})
                assert r.status_code == 201, r.text
                r = http.post("/auth/login", json={"username": name, "password": PASSWORD})
                assert r.status_code == 200, r.text
                live = Live(
                    server, mode, {"Authorization": f"Bearer {r.json()['access_token']}"}, {}, name
                )
            else:
                live = Live(server, mode, {"User-ID": "fuzz-trust"}, {})
            _seed(live, http)
        yield live
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log, log[-4000:]


@pytest.fixture(scope="module")
def jwt_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from _start(tmp_path_factory.mktemp("fuzz-jwt"), "jwt")


@pytest.fixture(scope="module")
def trust_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from _start(tmp_path_factory.mktemp("fuzz-trust"), "trust")


@pytest.fixture(scope="module", autouse=True)
def report() -> Iterator[None]:
    yield
    if REPORT and TALLIES:
        write_report(Path(REPORT))


# Running one case -------------------------------------------------------------------------------


def _short(value: Any) -> Any:
    if value == "" or isinstance(value, dict):
        return "0.2"  # sent as `timeout=`: the default, 25 s
    try:
        waits = float(str(value)) > 0.2
    except ValueError:
        waits = False  # not a number: refused at once
    return "0.2" if waits else value


def _bounded(case: Any) -> None:
    """A long-poll that would wait (25 s by default, 60 at most) answers at once instead —
    also when the timeout is sent several times (negative cases: the server reads the last)."""
    if not case.path.endswith("/poll"):
        return
    if case.query is None:
        case.query = {}
    value = case.query.get("timeout")
    if value is None:
        case.query["timeout"] = "0.2"
    elif isinstance(value, list):
        case.query["timeout"] = [_short(v) for v in value]
    else:
        case.query["timeout"] = _short(value)


def _aim(case: Any, live: Live) -> None:
    """Point the case's path at things that exist (the room, the message, the file)."""
    if case.path_parameters:
        for name in list(case.path_parameters):
            if name in live.known:
                case.path_parameters[name] = live.known[name]


def _protected(case: Any) -> bool:
    security = case.operation.definition.raw.get("security", [])
    return bool(security) and {} not in security


def run_case(
    case: Any,
    live: Live,
    tally_name: str,
    headers: dict[str, str],
    *,
    aim: bool,
    extra: Callable[[Any, Any], None] | None = None,
) -> None:
    if aim:
        _aim(case, live)
    _bounded(case)
    if case.path == "/auth/logout" and headers:
        headers = live.fresh_headers()
    timeout = STREAM_READ_SECONDS if case.path in STREAMS else REQUEST_TIMEOUT
    tally = TALLIES.setdefault(tally_name, Tally())
    started = time.monotonic()
    response = case.call(base_url=live.server.url, headers=headers, timeout=timeout)
    tally.seconds += time.monotonic() - started
    tally.operations.add(f"{case.method.upper()} {case.path}")
    tally.cases += 1
    tally.statuses[response.status_code] += 1
    case.validate_response(response, checks=CHECKS, headers=headers)
    if extra is not None:
        extra(case, response)


def fuzz(
    live: Live,
    name: str,
    headers: dict[str, str],
    extra: Callable[[Any, Any], None] | None = None,
    examples: int = EXAMPLES,
) -> None:
    """Every operation of the live schema, valid and invalid cases; all failures at once."""
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(live.server.url + "/openapi.json")
    # An open stream is read up to its first event (the `connected` hello), not forever.
    schema.config.max_stream_events = 1
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            # No shrinking: against a live server it can take minutes (Hypothesis gives up
            # after 5), and the first failing case already comes with its curl command.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
        )
        @given(case=strategy, aim=st.booleans())
        def one(case: Any, aim: bool) -> None:
            run_case(case, live, name, headers, aim=aim, extra=extra)

        try:
            one()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup
            failures.append(f"{operation.label}: {exc}")
    TALLIES.setdefault(name, Tally()).wall = time.monotonic() - started
    assert operations >= 30, operations
    assert not failures, f"{len(failures)} of {operations} operations failed:\n\n" + "\n\n".join(
        failures
    )


def test_jwt_signed_in(jwt_live: Live) -> None:
    fuzz(jwt_live, "jwt, signed in", jwt_live.headers)


def _never_lets_anonymous_in(case: Any, response: Any) -> None:
    if _protected(case):
        assert not 200 <= response.status_code < 300, (
            f"{case.method} {case.formatted_path} answered {response.status_code} to nobody"
        )


def test_jwt_anonymous(jwt_live: Live) -> None:
    # Most of these stop at the door (401): a third of the examples cover them.
    fuzz(
        jwt_live,
        "jwt, anonymous",
        {},
        extra=_never_lets_anonymous_in,
        examples=max(5, EXAMPLES // 3),
    )


def test_trust(trust_live: Live) -> None:
    fuzz(trust_live, "trust, User-ID", trust_live.headers)


# The report -------------------------------------------------------------------------------------


def write_report(path: Path) -> None:
    total = Tally()
    for t in TALLIES.values():
        total.operations |= t.operations
        total.cases += t.cases
        total.statuses.update(t.statuses)
        total.seconds += t.seconds
        total.wall += t.wall
    rows = [
        f"| {name} | {len(t.operations)} | {t.cases} | {t.server_errors} | "
        + ", ".join(f"{s}: {n}" for s, n in sorted(t.statuses.items()))
        + f" | {t.wall:.0f} s |"
        for name, t in TALLIES.items()
    ]
    command = os.environ.get("HUBBUB_FUZZ_COMMAND", " ".join(["pytest", *sys.argv[1:]]))
    path.write_text(
        "# Fuzzing results\n\n"
        "Written by `make fuzz` (`tests/fuzz/test_schemathesis.py` with `HUBBUB_FUZZ_REPORT`); "
        "do not edit by hand. Schemathesis generates valid and invalid requests (positive and "
        "negative modes) from the live `/openapi.json` for every operation, half of them aimed "
        "at a room, message and file that exist; each answer is checked for no 5xx, a "
        "documented status, content type, headers and body, and the documented error shape; "
        "anonymous jwt-mode calls to protected routes must never succeed. The same run drives "
        "the decoder fuzzers (`tests/fuzz/test_decoders.py`, `tests/unit/test_decoders.py`) "
        f"at {EXAMPLES // 25 or 1}x the suite's examples.\n\n"
        f"- command: `{command}`\n"
        f"- examples per operation: {EXAMPLES} (Hypothesis `max_examples`; the anonymous run "
        f"{max(5, EXAMPLES // 3)})\n"
        f"- schemathesis {schemathesis.__version__}, Python {sys.version.split()[0]}, "
        f"{os.cpu_count()} cores\n"
        f"- operations in `/openapi.json`: {len(total.operations)}; runs: {len(TALLIES)}; "
        f"cases sent: {total.cases}; 5xx answers: {total.server_errors}\n"
        f"- time: {total.wall:.0f} s for the schemathesis runs ({total.seconds:.0f} s of it "
        "waiting for answers)\n\n"
        "| run | operations | cases | 5xx | statuses | time |\n"
        "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
