"""OpenTelemetry traces of a send, an optional extra (``pip install 'hubbub[otel]'``).

``--otel-endpoint URL`` (``HUBBUB_OTEL_ENDPOINT``; OTLP/HTTP, e.g. ``http://collector:4318``)
turns it on. Without it neither the SDK nor the exporter is imported (the API is: FastAPI
depends on ``opentelemetry-api``), and each instrumented place costs one check of
:data:`TRACER` against ``None``.

One trace per send:

* ``send`` — the ``POST /chat/messages`` (ASGI or the fast lane), a child of the request's
  ``traceparent`` when it has one; attributes: room id, seq, HTTP status;
* ``commit`` — the writer's batch (the append in one transaction and its publishes): a child of
  the batch's first send and linked to every other send in it; attribute: batch size;
* ``publish`` — the message handed to the broker, a child of ``commit``; room id and seq. Its
  context travels with the event (in the Redis payload too), so
* ``deliver`` — the fan-out to this node's streams of one room in one loop tick, on every node
  that has listeners (one span per room batch and node, never per subscriber), is its child;
  attributes: room id, events, deliveries (events times local streams).

Spans are exported by a ``BatchSpanProcessor``: queued in memory and sent from its own thread,
never on the event loop. The tracer is per process (each ``--workers`` worker its own)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext, Tracer

# The tracer while tracing is on; every instrumented place checks it against None first.
TRACER: Tracer | None = None
_provider: Any = None

MISSING = (
    "--otel-endpoint needs the OpenTelemetry extra: pip install 'hubbub[otel]' "
    "(or unset HUBBUB_OTEL_ENDPOINT)"
)
DEFAULT_SERVICE = "hubbub"


def check_available() -> None:
    """ValueError naming the extra when OpenTelemetry's SDK or OTLP/HTTP exporter is missing."""
    try:
        import opentelemetry.exporter.otlp.proto.http.trace_exporter
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError as exc:
        raise ValueError(MISSING) from exc


def check_endpoint(endpoint: str) -> None:
    if not endpoint.startswith(("http://", "https://")):
        raise ValueError(
            f"--otel-endpoint must be an OTLP/HTTP base URL such as http://collector:4318, "
            f"got {endpoint!r}"
        )


def traces_url(endpoint: str) -> str:
    """The base URL (``http://collector:4318``) with OTLP/HTTP's ``/v1/traces`` path; a URL
    that already ends with it is kept."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def service_name(configured: str | None) -> str:
    """``HUBBUB_OTEL_SERVICE_NAME`` / ``--otel-service-name``, else the standard
    ``OTEL_SERVICE_NAME``, else ``hubbub``."""
    return configured or os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE


def configure(endpoint: str, name: str | None = None) -> None:
    """Turn tracing on for this process (idempotent: a second call is ignored)."""
    global TRACER, _provider
    if TRACER is not None:
        return
    check_endpoint(endpoint)
    check_available()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from hubbub import __version__

    resource = Resource.create({"service.name": service_name(name), "service.version": __version__})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    _provider = provider
    TRACER = provider.get_tracer("hubbub", __version__)


def shutdown() -> None:
    """Export what is queued and stop (blocking: call it off the loop)."""
    global TRACER, _provider
    provider, _provider, TRACER = _provider, None, None
    if provider is not None:
        provider.shutdown()


# -- helpers for the instrumented places (only called while TRACER is set) ------------------


def incoming(headers: list[tuple[bytes, bytes]]) -> Any:
    """The context of a request's ``traceparent``/``tracestate`` headers (None without)."""
    carrier: dict[str, str] = {}
    for k, v in headers:
        if k == b"traceparent" or k == b"tracestate":
            carrier[k.decode()] = v.decode("latin-1")
    if not carrier:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(carrier)


def send_span(headers: list[tuple[bytes, bytes]]) -> Any:
    """The ``send`` span (a context manager that makes it current)."""
    from opentelemetry import trace

    assert TRACER is not None
    return TRACER.start_as_current_span(
        "send",
        context=incoming(headers),
        kind=trace.SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "/chat/messages"},
    )


def current() -> SpanContext | None:
    """The span context of the span running now (a send) when it is sampled: a send the
    sampler (``OTEL_TRACES_SAMPLER``) left out gets no commit, publish or deliver span."""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    return ctx if ctx.is_valid and ctx.trace_flags.sampled else None


def annotate(**attributes: Any) -> None:
    """Attributes on the span running now."""
    from opentelemetry import trace

    span = trace.get_current_span()
    for k, v in attributes.items():
        if v is not None:
            span.set_attribute(f"hubbub.{k}", v)


def commit_span(sends: list[SpanContext | None], size: int) -> Any:
    """A ``commit`` span (a context manager): a child of the batch's first traced send, linked
    to every traced send."""
    from opentelemetry import trace

    assert TRACER is not None
    traced = [c for c in sends if c is not None]
    parent = trace.set_span_in_context(trace.NonRecordingSpan(traced[0])) if traced else None
    links = [trace.Link(c) for c in traced]
    return TRACER.start_as_current_span(
        "commit", context=parent, links=links, attributes={"hubbub.batch_size": size}
    )


def publish_span(room_id: str, seq: int | None) -> Any:
    assert TRACER is not None
    attributes: dict[str, Any] = {"hubbub.room_id": room_id}
    if seq is not None:
        attributes["hubbub.seq"] = seq
    return TRACER.start_as_current_span("publish", attributes=attributes)


def traceparent(span: Span) -> str:
    """The W3C ``traceparent`` of ``span`` (carried by an event through the broker)."""
    c = span.get_span_context()
    return f"00-{c.trace_id:032x}-{c.span_id:016x}-{c.trace_flags:02x}"


def deliver(parent: str | None, room_id: str, events: int, deliveries: int) -> Span:
    """A started ``deliver`` span (the caller ends it once the room's batch is written to this
    node's streams): a child of the first event's ``publish`` when it carries one."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    assert TRACER is not None
    ctx = TraceContextTextMapPropagator().extract({"traceparent": parent}) if parent else None
    return TRACER.start_span(
        "deliver",
        context=ctx,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "hubbub.room_id": room_id,
            "hubbub.events": events,
            "hubbub.deliveries": deliveries,
        },
    )
