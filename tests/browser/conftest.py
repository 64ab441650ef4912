"""Browser tests: Playwright driving Debian's Chromium against real ``hubbub serve`` processes.

Chromium is never downloaded: ``make test`` installs Debian's package (``make browser-deps``).
Without ``/usr/bin/chromium`` these tests skip locally and fail under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Playwright, expect, sync_playwright

from tests.support import Server

CHROMIUM = Path(os.environ.get("HUBBUB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FAST_ENV = {
    "HUBBUB_RATE_LIMIT_BURST": "2000",
    "HUBBUB_RATE_LIMIT_PER_SECOND": "2000",
    "HUBBUB_PRESENCE_GRACE": "1",
}

expect.set_options(timeout=10_000)


def missing(reason: str) -> None:
    """Skip locally; under CI a missing prerequisite is a failure, never a silent skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} — under CI it must be there (`make test` installs it)")
    pytest.skip(f"{reason}; run `make test` (or `make browser-deps seed-pages`)")


# Module scope, not session: Playwright's sync API runs an event loop in this thread while it is
# open, and the rest of the suite (pytest-asyncio) needs the thread free when these modules end.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is not installed")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A jwt-mode server (the default mode, as the web app is used)."""
    server = Server(tmp_path_factory.mktemp("web"), auth="jwt", env=dict(FAST_ENV))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def trust_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A trust-mode server: what lets the seeds' snippets run verbatim."""
    server = Server(tmp_path_factory.mktemp("seeds"), auth="trust", env=dict(FAST_ENV))
    server.start()
    yield server
    server.stop()


NewContext = Callable[..., BrowserContext]


@pytest.fixture
def new_context(browser: Browser) -> Iterator[NewContext]:
    """Open browser contexts (one per user); closed after the test."""
    contexts: list[BrowserContext] = []

    def make(**kw: Any) -> BrowserContext:
        kw.setdefault("viewport", {"width": 1280, "height": 800})
        ctx = browser.new_context(**kw)
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()
