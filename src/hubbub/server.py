"""Run Hubbub under uvicorn (uvloop + httptools), with a shutdown that ends streams first."""

from __future__ import annotations

import logging
import os
import signal
import socket
from types import FrameType
from typing import Any

import uvicorn
from uvicorn._subprocess import get_subprocess

from hubbub.app import HubbubApp, create_app
from hubbub.config import Settings
from hubbub.http_protocol import configure as configure_http
from hubbub.logs import configure as configure_logs
from hubbub.logs import log_config
from hubbub.startup import check_trust, check_workers

log = logging.getLogger("hubbub")


class HubbubServer(uvicorn.Server):
    """On SIGTERM: stop accepting, end every stream (clients reconnect by ``retry:``), then let
    uvicorn finish in-flight requests and run the lifespan shutdown (which drains the writer)."""

    def hubbub(self) -> HubbubApp | None:
        app = self.config.loaded_app if self.config.loaded else None
        while app is not None and not isinstance(app, HubbubApp):
            app = getattr(app, "app", None)  # uvicorn's middleware wrappers
        return app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn re-raises captured signals after a graceful exit; a completed SIGTERM drain
        # is a clean exit, so the process exits 0 (what orchestrators expect).
        self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        app = self.hubbub()
        runtime = app.runtime if app is not None else None
        if runtime is not None:
            log.info("closing %d streams", len(runtime.hub.connections))
            runtime.hub.close_all()
        await super().shutdown(sockets)


def worker_app() -> HubbubApp:
    """The app of one worker process; its settings come from the HUBBUB_* environment."""
    settings = Settings()
    configure_http(settings)
    return create_app(settings)


def _export(settings: Settings) -> None:
    """Hand the resolved settings (the secret included) to worker processes."""
    for name, value in settings.model_dump().items():
        if value is not None:
            os.environ[f"HUBBUB_{name.upper()}"] = str(value)
    os.environ["HUBBUB_SECRET"] = settings.resolved_secret()
    os.environ["HUBBUB_WORKERS"] = "1"


def serve(settings: Settings) -> None:
    """Check what the settings name is there (``hubbub.startup``: one-line errors, exit code 3),
    bind the port, say what runs where, then serve."""
    from hubbub import startup

    check_trust(settings)
    check_workers(settings)
    level = settings.log_level.lower()
    configure_logs(settings.log_format, level)
    multi = settings.workers > 1
    secret = startup.prepare_data_dir(settings)
    sock = startup.listen(settings)
    startup.reach_broker(settings)
    startup.reach_database(settings)  # migrates once, before any worker races to
    startup.reach_files(settings)
    if multi:
        _export(settings)
    app: HubbubApp | str = "hubbub.server:worker_app" if multi else create_app(settings)
    config = uvicorn.Config(
        app,
        factory=multi,
        host=settings.host,
        port=settings.port,
        backlog=settings.backlog,
        loop="uvloop",
        http=configure_http(settings),
        ws="websockets-sansio",
        ws_max_size=64 * 1024,
        ws_ping_interval=settings.ws_ping_interval,
        ws_ping_timeout=settings.ws_ping_timeout,
        ws_per_message_deflate=False,
        lifespan="on",
        log_config=log_config(settings.log_format, level),  # worker processes apply it too
        log_level="debug" if level == "trace" else level,
        access_log=level == "debug",
        timeout_graceful_shutdown=int(settings.shutdown_timeout),
        proxy_headers=True,
        server_header=False,
        date_header=False,
    )
    startup.log_summary(settings, sock, secret)
    if not multi:
        HubbubServer(config).run(sockets=[sock])
        return
    run_workers(config, settings.workers, sock)


def run_workers(config: uvicorn.Config, count: int, sock: socket.socket) -> None:
    """``count`` processes share one listening socket; SIGTERM/SIGINT is passed on to each,
    which drains as a single server does; a worker that dies is replaced."""
    server = HubbubServer(config)
    stopping = False

    def spawn() -> Any:
        process = get_subprocess(config, server.run, [sock])
        process.start()
        return process

    workers = [spawn() for _ in range(count)]

    def stop(sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("started %d workers", count)
    while not stopping:
        for i, process in enumerate(workers):
            process.join(timeout=0.2)
            if process.exitcode is not None and not stopping:
                log.error(
                    "worker %s exited with %s; starting another", process.pid, process.exitcode
                )
                workers[i] = spawn()
    for process in workers:
        process.join()
    sock.close()
