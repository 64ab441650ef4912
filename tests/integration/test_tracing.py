"""OpenTelemetry traces (docs/deployment.md, Tracing): a real server with ``--otel-endpoint``
exports over OTLP/HTTP to a tiny receiver run by the test; a send's spans ``send`` → ``commit``
→ ``publish`` → ``deliver`` arrive in one trace, the caller's ``traceparent`` honoured. Without
the extra installed, ``--otel-endpoint`` is one clear error, and without the flag neither the
SDK nor the exporter is imported."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support import Server, client, free_port, open_stream, say, user


class OtlpReceiver:
    """Records every span POSTed to ``/v1/traces`` (protobuf ``ExportTraceServiceRequest``)."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.services: list[str] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver.lock:
                    receiver.paths.append(self.path)
                    for rs in request.resource_spans:
                        for attr in rs.resource.attributes:
                            if attr.key == "service.name":
                                receiver.services.append(attr.value.string_value)
                        for ss in rs.scope_spans:
                            receiver.spans.extend(ss.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def in_trace(self, trace_id: bytes) -> dict[str, Any]:
        with self.lock:
            return {s.name: s for s in self.spans if s.trace_id == trace_id}


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()


def attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.int_value if v.HasField("int_value") else v.string_value
    return out


async def test_send_commit_publish_deliver_in_the_callers_trace(
    data_dir: Path, otlp: OtlpReceiver
) -> None:
    server = Server(
        data_dir,
        env={"OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "chat-eu"},
        args=["--otel-endpoint", otlp.url],
    ).start()
    trace_id = os.urandom(16)
    parent_id = os.urandom(8)
    traceparent = f"00-{trace_id.hex()}-{parent_id.hex()}-01"
    try:
        async with client(server.url) as http:
            await say(http, "alice", "traced", "creates the room")
            async with open_stream(http, "/chat/room/traced/events", headers=user("w1")) as s1:
                async with open_stream(http, "/chat/room/traced/events", headers=user("w2")) as s2:
                    r = await http.post(
                        "/chat/messages",
                        headers={**user("alice"), "traceparent": traceparent},
                        json={"room_id": "traced", "message": "follow me"},
                    )
                    assert r.status_code == 201, r.text
                    seq = r.json()["message"]["seq"]
                    await s1.wait_messages(1)
                    await s2.wait_messages(1)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                spans = otlp.in_trace(trace_id)
                if {"send", "commit", "publish", "deliver"} <= set(spans):
                    break
                await asyncio.sleep(0.1)
    finally:
        server.stop()
    assert {"send", "commit", "publish", "deliver"} <= set(spans), sorted(spans)
    send, commit, publish, deliver = (spans[n] for n in ("send", "commit", "publish", "deliver"))
    # one chain, hanging off the caller's span
    assert send.parent_span_id == parent_id
    assert commit.parent_span_id == send.span_id
    assert publish.parent_span_id == commit.span_id
    assert deliver.parent_span_id == publish.span_id
    assert any(link.span_id == send.span_id for link in commit.links)
    assert attrs(send)["hubbub.room_id"] == "traced"
    assert attrs(send)["hubbub.seq"] == seq
    assert attrs(send)["http.response.status_code"] == 201
    assert attrs(commit)["hubbub.batch_size"] == 1
    assert attrs(publish)["hubbub.seq"] == seq
    assert attrs(deliver)["hubbub.room_id"] == "traced"
    # one deliver span for the room's batch on this node, counting both streams
    assert attrs(deliver)["hubbub.deliveries"] == 2
    assert sum(1 for s in otlp.in_trace(trace_id).values() if s.name == "deliver") == 1
    assert set(otlp.paths) == {"/v1/traces"}
    assert set(otlp.services) == {"chat-eu"}


@pytest.fixture
def no_otel(tmp_path: Path) -> Path:
    """A PYTHONPATH entry that hides the OpenTelemetry SDK and exporter, as without the extra.
    (The API stays: FastAPI depends on ``opentelemetry-api`` and imports it.) ``opentelemetry``
    is a namespace package, so these regular packages come first."""
    shadow = tmp_path / "shadow"
    for part in ("sdk", "exporter"):
        package = shadow / "opentelemetry" / part
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(f"raise ImportError('no opentelemetry.{part}')\n")
    return shadow


def test_otel_endpoint_without_the_extra_is_one_clear_error(data_dir: Path, no_otel: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(no_otel), "HUBBUB_OTEL_ENDPOINT": "http://c:4318"}
    cmd = [sys.executable, "-m", "hubbub", "serve", "--data-dir", str(data_dir)]
    cmd += ["--port", str(free_port())]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "pip install 'hubbub[otel]'" in done.stderr
    assert "Traceback" not in done.stderr


async def test_without_the_flag_opentelemetry_is_never_imported(
    data_dir: Path, no_otel: Path
) -> None:
    """A server whose OpenTelemetry SDK and exporter imports would fail serves sends and
    streams: neither is imported unless --otel-endpoint is given."""
    server = Server(data_dir, env={"PYTHONPATH": str(no_otel)}).start()
    try:
        async with client(server.url) as http:
            async with open_stream(http, "/chat/room/plain/events", headers=user("w")) as s:
                await say(http, "alice", "plain", "untraced")
                await s.wait_messages(1)
    finally:
        server.stop()
    assert "opentelemetry" not in server.log()
