"""Health, readiness and metrics: no token needed (``--metrics-token`` guards metrics)."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hubbub.api.common import BrokerDep, HubDep, MetricsDep, SettingsDep, StoreDep, respond
from hubbub.errors import Unauthenticated, Unavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz(request: Request) -> Response:
    """The process is up and its event loop answers."""
    return respond(request, {"status": "ok"})


@router.get("/readyz")
async def readyz(request: Request, hub: HubDep, store: StoreDep, broker: BrokerDep) -> Response:
    """The store and the broker answer (503 otherwise), and the server is not draining."""
    if hub.closing:
        raise Unavailable("the server is shutting down", code="shutting_down")
    try:
        await asyncio.wait_for(asyncio.gather(store.ping(), broker.ping()), timeout=3)
    except Exception as exc:
        raise Unavailable(f"not ready: {exc.__class__.__name__}: {exc}", code="not_ready") from None
    return respond(request, {"status": "ready"})


@router.get("/metrics")
async def metrics(request: Request, settings: SettingsDep, counters: MetricsDep) -> Response:
    """Prometheus text format."""
    token = settings.metrics_token
    if token:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthenticated("metrics need the metrics token", code="not_authenticated")
    return Response(generate_latest(counters.registry), media_type=CONTENT_TYPE_LATEST)
