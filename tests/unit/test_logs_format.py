"""The log formatters and request ids (``logs.py``), and the per-route series as Prometheus
exposes them (``http_metrics.py``), without a server."""

from __future__ import annotations

import json
import logging
import re

from prometheus_client import CollectorRegistry, generate_latest

from hubbub.http_metrics import HttpMetrics
from hubbub.logs import (
    REQUEST_ID,
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    request_id_of,
)


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("hubbub.test", logging.WARNING, __file__, 1, message, args, None)
    rec.__dict__.update(extra)
    RequestIdFilter().filter(rec)
    return rec


def test_json_line_has_fields_extras_request_id_and_exception() -> None:
    token = REQUEST_ID.set("abc123")
    try:
        rec = record("sent %d\nto %s", 3, 'room "x"', room_id="r1")
    finally:
        REQUEST_ID.reset(token)
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        rec.exc_info = sys.exc_info()
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    out = json.loads(line)
    assert out["message"] == 'sent 3\nto room "x"'
    assert out["level"] == "WARNING" and out["logger"] == "hubbub.test"
    assert out["request_id"] == "abc123" and out["room_id"] == "r1"
    assert "ValueError: bad" in out["exception"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", out["ts"])


def test_text_line_is_one_line_with_request_id() -> None:
    token = REQUEST_ID.set("req-9")
    try:
        rec = record("a\nb", user="u1")
    finally:
        REQUEST_ID.reset(token)
    line = TextFormatter().format(rec)
    assert re.fullmatch(r"\S+Z WARNING hubbub\.test \[req-9\] a\\nb user=u1", line), line
    assert "[" not in TextFormatter().format(record("outside a request"))


def test_request_ids_kept_when_sane_else_replaced() -> None:
    assert request_id_of([(b"x-request-id", b"abc-DEF_1.2:3/4+5=6@7")]) == b"abc-DEF_1.2:3/4+5=6@7"
    for bad in (b"", b"x" * 129, b'a"b', b"a b", b"\xff", b"a\nb"):
        rid = request_id_of([(b"x-request-id", bad)])
        assert re.fullmatch(rb"[0-9a-f]{16}", rid) and rid != bad
    assert request_id_of([]) != request_id_of([])


def test_http_series_exposition() -> None:
    registry = CollectorRegistry()
    metrics = HttpMetrics(registry)
    metrics.observe("POST", "/chat/messages", 201, 0.0004)
    metrics.observe("POST", "/chat/messages", 201, 0.003)
    metrics.observe("BREW", "unmatched", 404, 0.001)
    metrics.observe("GET", "/chat/room/{room_id}/poll", 200, 25.0)
    text = generate_latest(registry).decode()
    assert (
        'hubbub_http_requests_total{method="POST",route="/chat/messages",status="201"} 2.0' in text
    )
    assert 'hubbub_http_requests_total{method="other",route="unmatched",status="404"} 1.0' in text
    bucket = (
        'hubbub_http_request_duration_seconds_bucket{le="%s",method="POST",route="/chat/messages"}'
    )
    assert bucket % "0.001" + " 1.0" in text
    assert bucket % "0.005" + " 2.0" in text
    assert bucket % "+Inf" + " 2.0" in text
    assert (
        'hubbub_http_request_duration_seconds_count{method="POST",route="/chat/messages"} 2.0'
        in text
    )
    assert "poll" not in "".join(
        line for line in text.splitlines() if line.startswith("hubbub_http_request_duration")
    )
    assert "_created" not in text
