"""The seeds' browser clients, verbatim, against a real server in a real browser.

``pages/seeds/`` holds the seeds' code byte for byte (checked below against the seed documents):
the plain ``EventSource`` + ``fetch`` snippet, the React hook ``useChatRoom`` and the Vue
component ``ChatRoom.vue`` (``004_…``), and the SolidJS ``useSSE`` hook (``000_…``). The pages
around them (``pages/*.html``, ``*-host.*``) only provide what the snippets expect: a root to
render into, ``roomId``/``userId``, a form. React 18, Vue 3 and solid-js come from the npm
registry (``package.json``/``package-lock.json``) and are bundled by ``build.mjs`` (esbuild; the
Vue SFC compiled by ``@vue/compiler-sfc``) into ``pages/dist/`` — ``make seed-pages``.

The seeds use relative URLs (``/chat/...``), so each page must be on the server's origin: the
browser asks the server for ``/__seed__/<page>``, and Playwright answers those requests from
``pages/`` (``context.route``) — the server itself has no test pages, and everything else the
page does goes to the real server. The server runs in ``trust`` mode, which is what lets the
snippets run unchanged (identity from ``?user_id=``/``user_id``, or a guest cookie).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Route, expect

from tests.browser.conftest import NewContext, missing
from tests.support import Server

HERE = Path(__file__).resolve().parent
PAGES = HERE / "pages"
REPO = HERE.parents[1]
SEED_DOCS = Path(os.environ.get("HUBBUB_SEEDS", REPO.parent / "shared" / "seeds"))

# file in pages/seeds/ → the seed document it is copied from
VERBATIM = {
    "plain-snippet.js": "004_49bc314ecc8e2920.txt",
    "useChatRoom.js": "004_49bc314ecc8e2920.txt",
    "ChatRoom.vue": "004_49bc314ecc8e2920.txt",
    "useSSE.ts": "000_28e32ec519baa86b.txt",
}
BUNDLES = ["react.js", "vue.js", "solid.js"]
_rooms = itertools.count(1)
_warmups = itertools.count(1)
ERRORS: dict[Page, list[str]] = {}


@pytest.fixture(scope="module")
def seed_pages() -> Path:
    absent = [name for name in BUNDLES if not (PAGES / "dist" / name).is_file()]
    if absent:
        missing(f"the seed pages are not built ({', '.join(absent)} missing in {PAGES / 'dist'})")
    return PAGES


def serve_pages(route: Route) -> None:
    """Answer ``/__seed__/<file>`` from ``pages/`` (nothing outside it)."""
    relative = urlparse(route.request.url).path.removeprefix("/__seed__/")
    path = (PAGES / relative).resolve()
    if PAGES not in path.parents or not path.is_file():
        route.fulfill(status=404, body="not found")
        return
    route.fulfill(path=path)


@pytest.fixture
def api(trust_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=trust_server.url, timeout=10) as client:
        yield client


def open_page(ctx: BrowserContext, server: Server, name: str, room: str, user: str) -> Page:
    ctx.route(f"{server.url}/__seed__/**", serve_pages)
    page = ctx.new_page()
    page.on("pageerror", lambda e: ERRORS.setdefault(page, []).append(str(e)))
    page.goto(f"{server.url}/__seed__/{name}.html?room={room}&user={user}")
    return page


def ready(page: Page, client: str) -> None:
    """Wait for what each client shows of its connection (the Vue component shows none)."""
    if client == "plain":
        page.wait_for_function("() => eventSource.readyState === EventSource.OPEN")
    elif client in ("react", "solid"):
        expect(page.locator("#status")).to_have_text("connected")


def shown(page: Page) -> list[str]:
    return [t.strip() for t in page.locator(".message").all_inner_texts()]


def until_live(page: Page, post: Callable[[str], None]) -> None:
    """A fresh stream is live only: send until one message arrives, so the stream is known to
    be attached before the real exchange starts."""
    for _ in range(20):
        text = f"warm-up {next(_warmups)}"
        post(text)
        try:
            expect(page.locator(".message", has_text=text)).to_have_count(1, timeout=750)
            return
        except AssertionError:
            continue
    raise AssertionError("the page never received a message")


def send_from_page(page: Page, text: str) -> None:
    page.get_by_role("textbox").fill(text)
    page.get_by_role("button", name="Send").click()


def history(api: httpx.Client, room: str) -> list[dict[str, object]]:
    r = api.get(f"/chat/room/{room}/history", params={"limit": 200}, headers={"User-ID": "sam"})
    assert r.status_code == 200, r.text
    out: list[dict[str, object]] = r.json()
    return out


def post_as(api: httpx.Client, room: str, user: str) -> Callable[[str], None]:
    def post(text: str) -> None:
        r = api.post(
            "/chat/messages", json={"room_id": room, "message": text}, headers={"User-ID": user}
        )
        assert r.status_code == 201, r.text

    return post


def test_seed_code_is_verbatim() -> None:
    if not SEED_DOCS.is_dir():
        missing(f"the seed documents are not at {SEED_DOCS}")
    for name, doc in VERBATIM.items():
        code = (PAGES / "seeds" / name).read_text(encoding="utf-8")
        source = (SEED_DOCS / doc).read_text(encoding="utf-8")
        assert len(code) > 500, name
        assert code in source, f"pages/seeds/{name} differs from the seed's code in {doc}"


@pytest.mark.parametrize("client", ["plain", "react", "vue", "solid"])
def test_seed_client_exchanges_messages(
    client: str,
    seed_pages: Path,
    new_context: NewContext,
    trust_server: Server,
    api: httpx.Client,
) -> None:
    room = f"seed-{client}-{next(_rooms)}"
    user = f"{client}-user"
    page = open_page(new_context(), trust_server, client, room, user)
    ready(page, client)
    until_live(page, post_as(api, room, "sam"))

    # receive
    post_as(api, room, "sam")("hello from the server <b>not bold</b>")
    expect(page.locator(".message", has_text="hello from the server")).to_have_text(
        "sam: hello from the server <b>not bold</b>"
    )
    # send
    send_from_page(page, f"hello from {client}")
    expect(page.locator(".message", has_text=f"hello from {client}")).to_have_count(1)
    stored = [m for m in history(api, room) if m["text"] == f"hello from {client}"]
    assert len(stored) == 1
    if client == "vue":  # the component sends no identity: the server gave it a guest
        assert str(stored[0]["user_id"]).startswith("guest")
    else:
        assert stored[0]["user_id"] == user
    assert ERRORS.get(page, []) == []


def test_all_four_seed_clients_talk_to_each_other(
    seed_pages: Path, new_context: NewContext, trust_server: Server, api: httpx.Client
) -> None:
    room = f"seed-all-{next(_rooms)}"
    pages = {
        client: open_page(new_context(), trust_server, client, room, f"{client}-user")
        for client in ("plain", "react", "vue", "solid")
    }
    for client, page in pages.items():
        ready(page, client)
        until_live(page, post_as(api, room, "sam"))
    for client, page in pages.items():
        send_from_page(page, f"from {client}")
    for page in pages.values():
        for client in pages:
            expect(page.locator(".message", has_text=f"from {client}")).to_have_count(1)
    expected = {f"from {c}" for c in pages}
    texts = [m["text"] for m in history(api, room) if m["text"] in expected]
    assert sorted(texts) == sorted(expected)
    for page in pages.values():
        assert ERRORS.get(page, []) == []
