"""Run Hubbub under uvicorn (uvloop + httptools), with a shutdown that ends streams first."""

from __future__ import annotations

import logging
import signal
import socket
from types import FrameType

import uvicorn

from hubbub.app import HubbubApp, create_app
from hubbub.config import Settings, is_loopback

log = logging.getLogger("hubbub")


class HubbubServer(uvicorn.Server):
    """On SIGTERM: stop accepting, end every stream (clients reconnect by ``retry:``), then let
    uvicorn finish in-flight requests and run the lifespan shutdown (which drains the writer)."""

    def __init__(self, config: uvicorn.Config, app: HubbubApp) -> None:
        super().__init__(config)
        self.hubbub = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises captured signals after a graceful exit; a completed SIGTERM drain
        # is a clean exit, so the process exits 0 (what orchestrators expect).
        self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        runtime = self.hubbub.runtime
        if runtime is not None:
            log.info("closing %d streams", len(runtime.hub.connections))
            runtime.hub.close_all()
        await super().shutdown(sockets)


class TrustModeRefused(RuntimeError):
    pass


def check_trust(settings: Settings) -> None:
    if settings.auth == "trust" and not is_loopback(settings.host) and not settings.force_trust:
        raise TrustModeRefused(
            f"refusing --auth trust on non-loopback address {settings.host}: anyone could act "
            "as anyone. Use --auth jwt, bind 127.0.0.1, or pass --force-trust if you mean it."
        )


def serve(settings: Settings) -> None:
    check_trust(settings)
    level = settings.log_level.lower()
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_max_size=64 * 1024,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ws_per_message_deflate=False,
        lifespan="on",
        log_level="debug" if level == "trace" else level,
        access_log=level == "debug",
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        proxy_headers=True,
        server_header=False,
        date_header=False,
    )
    HubbubServer(config, app).run()
