#!/usr/bin/env python3
"""What a request id and the per-route metrics add to one request, in-process (``logs.py``,
``http_metrics.py``): the steps the send fast lane now takes per ``POST /chat/messages``
(pick or make the id, stamp the task's context, time it, count it, one more header in the
head), against the head it wrote before. No server: the send's own cost (~100-400 µs of CPU,
``docs/performance.md``) is too noisy on a shared machine to see a microsecond in.

    .venv/bin/python bench/request_id_probe.py

Prints one JSON object: ns of CPU per request for each step and in total, and ``call`` (an
empty call, the floor every step includes) to judge the machine by.
"""

from __future__ import annotations

import json
import timeit
from time import perf_counter, process_time

from prometheus_client import CollectorRegistry

from hubbub.http_metrics import HttpMetrics
from hubbub.logs import REQUEST_ID, request_id_of

HEADERS = [
    (b"host", b"chat.example.com"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"),
    (b"accept", b"*/*"),
    (b"accept-language", b"en-GB,en;q=0.9"),
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"),
    (b"origin", b"https://chat.example.com"),
    (b"content-length", b"52"),
]
JSON_TYPE = b"application/json; charset=utf-8"
BODY = b'{"message":{"id":"m1","seq":1,"room_id":"general","text":"hello"}}'


def per_call_ns(stmt: object, number: int = 200_000) -> float:
    # CPU time, not wall time: other processes on a shared machine take turns on the cores
    best = min(timeit.repeat(stmt, number=number, repeat=5, timer=process_time))  # type: ignore[arg-type]
    return best / number * 1e9


def main() -> None:
    meter = HttpMetrics(CollectorRegistry())
    given = [*HEADERS, (b"x-request-id", b"3f9c2a7e-client-supplied")]
    rid = request_id_of(HEADERS)

    def head_before() -> bytes:
        return b"content-type: %s\r\ncontent-length: %d\r\n" % (JSON_TYPE, len(BODY))

    def head_after() -> bytes:
        return b"content-type: %s\r\ncontent-length: %d\r\nx-request-id: %s\r\n" % (
            JSON_TYPE,
            len(BODY),
            rid,
        )

    def lane_added() -> None:  # what _takes_fast_lane / _answer_fast / _write_fast added
        request_id = request_id_of(HEADERS)
        started = perf_counter()
        REQUEST_ID.set(request_id.decode())
        meter.observe("POST", "/chat/messages", 201, perf_counter() - started)

    steps = {
        "call": per_call_ns(lambda: None),
        "id_generated": per_call_ns(lambda: request_id_of(HEADERS)),
        "id_from_client": per_call_ns(lambda: request_id_of(given)),
        "contextvar_set": per_call_ns(lambda: REQUEST_ID.set("3f9c2a7e11d04b55")),
        "metrics_observe": per_call_ns(
            lambda: meter.observe("POST", "/chat/messages", 201, 0.0002)
        ),
        "head_extra_header": per_call_ns(head_after) - per_call_ns(head_before),
        "fast_lane_total": per_call_ns(lane_added)
        + per_call_ns(head_after)
        - per_call_ns(head_before),
    }
    print(json.dumps({k: round(v) for k, v in steps.items()}, indent=1))


if __name__ == "__main__":
    main()
