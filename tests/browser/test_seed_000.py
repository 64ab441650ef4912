"""Seed 000's SolidJS components, verbatim, in Chromium against real servers.

``pages/seeds/useWebSocket.tsx`` (the ``useWebSocket`` hook and its ``Chat``) and
``pages/seeds/Notifications.tsx`` (the ``Notifications`` usage of ``useSSE``, whose hook is
``pages/seeds/useSSE.ts``) are the seed's code byte for byte, checked below against the seed
document. ``build.mjs`` strips their types (esbuild) and compiles their JSX with Solid's own Babel
preset, after appending what the seed leaves to its surroundings (imports of ``For``/``Show``,
``useSSE`` and a ``NotificationToast``, which the seed names but does not define; an export).

* ``Chat`` opens ``new WebSocket('/ws/chat')`` (the room ``general``), sends
  ``{"type": "message", "text"}`` and shows ``msg.text`` of every frame: two people in two
  browser contexts type, send, and each sees both messages — trust mode (guests, named by the
  cookie the handshake sets) and jwt mode (each signed in: the session cookie).
* ``Notifications`` opens ``EventSource('/api/sse', {withCredentials: true})``; the
  application's backend posts ``POST /server/users/{id}/notifications`` with its server key and
  the toast shows the notification's ``data``.

The pages are served on the server's own origin (``/__seed__/…``, answered by Playwright from
``pages/``), as ``test_seed_clients.py`` does.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import FAST_ENV, NewContext, missing
from tests.browser.test_seed_clients import ERRORS, PAGES, SEED_DOCS, serve_pages
from tests.support import PASSWORD, Server

SERVER_KEY = "seed-000-backend-key-0123456789"
VERBATIM = ("useWebSocket.tsx", "Notifications.tsx", "useSSE.ts")
SEED_DOC = "000_28e32ec519baa86b.txt"
BUNDLES = ("seed-chat.js", "seed-notifications.js")
_texts = itertools.count(1)


@pytest.fixture(scope="module")
def built() -> None:
    absent = [name for name in BUNDLES if not (PAGES / "dist" / name).is_file()]
    if absent:
        missing(f"the seed pages are not built ({', '.join(absent)} missing in {PAGES / 'dist'})")


@pytest.fixture(scope="module")
def jwt_seed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """jwt mode (the default) with a server key: the application's backend can notify."""
    server = Server(
        tmp_path_factory.mktemp("seed000"),
        auth="jwt",
        env={**FAST_ENV, "HUBBUB_SERVER_KEY": SERVER_KEY},
    )
    server.start()
    yield server
    server.stop()


def open_seed(ctx: BrowserContext, server: Server, name: str) -> Page:
    ctx.route(f"{server.url}/__seed__/**", serve_pages)
    # The page is answered by Playwright, so Chromium cannot tell it came from the loopback
    # address, and its Local Network Access check would block the page's WebSocket to
    # 127.0.0.1 (fetch and EventSource pass). A page the server itself serves needs no grant.
    ctx.grant_permissions(["local-network-access"], origin=server.url)
    page = ctx.new_page()
    page.on("pageerror", lambda e: ERRORS.setdefault(page, []).append(str(e)))
    page.goto(f"{server.url}/__seed__/{name}.html")
    return page


def sign_in(ctx: BrowserContext, server: Server) -> dict[str, Any]:
    """Register and log in from the context itself, so it holds the session cookie as a
    signed-in browser does; the logged-in user."""
    name = f"seed_{uuid.uuid4().hex[:10]}"
    creds = {"username": name, "password": PASSWORD}
    r = ctx.request.post(f"{server.url}/auth/register", data=creds)
    assert r.status == 201, r.text()
    r = ctx.request.post(f"{server.url}/auth/login", data=creds)
    assert r.status == 200, r.text()
    user: dict[str, Any] = r.json()["user"]
    return user


def connected(page: Page) -> None:
    """The seed's Chat enables Send once its socket is open."""
    expect(page.get_by_role("button", name="Send")).to_be_enabled()


def type_and_send(page: Page, text: str) -> None:
    page.get_by_role("textbox").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("textbox")).to_have_value("")  # the seed clears its input


def shown(page: Page, text: str) -> Any:
    return page.locator("#app div div", has_text=text)


def chat_between(first: Page, second: Page) -> None:
    for page in (first, second):
        connected(page)
    a, b = f"hello from the first {next(_texts)}", f"and from the second {next(_texts)}"
    type_and_send(first, a)
    type_and_send(second, b)
    for page in (first, second):
        expect(shown(page, a)).to_have_count(1)
        expect(shown(page, b)).to_have_count(1)
        assert not ERRORS.get(page), ERRORS.get(page)


def test_seed_000_code_is_verbatim() -> None:
    if not SEED_DOCS.is_dir():
        missing(f"the seed documents are not at {SEED_DOCS}")
    source = (SEED_DOCS / SEED_DOC).read_text(encoding="utf-8")
    for name in VERBATIM:
        code = (PAGES / "seeds" / name).read_text(encoding="utf-8")
        assert len(code) > 300, name
        assert code in source, f"pages/seeds/{name} differs from the seed's code in {SEED_DOC}"
    assert "useWebSocket<ChatMessage>('/ws/chat')" in (PAGES / "seeds" / VERBATIM[0]).read_text()
    assert "useSSE<Notification>('/api/sse')" in (PAGES / "seeds" / VERBATIM[1]).read_text()


def test_chat_two_guests_see_each_others_messages(
    built: None, trust_server: Server, new_context: NewContext
) -> None:
    first = open_seed(new_context(), trust_server, "seed-chat")
    second = open_seed(new_context(), trust_server, "seed-chat")
    chat_between(first, second)
    # Two guests, each named by the cookie its socket's handshake set.
    guests = {
        c["value"]
        for page in (first, second)
        for c in page.context.cookies()
        if c["name"] == "hubbub_guest"
    }
    assert len(guests) == 2
    r = httpx.get(
        f"{trust_server.url}/chat/room/general/history", headers={"User-ID": "sam"}, timeout=10
    )
    assert r.status_code == 200, r.text
    assert {m["user_id"] for m in r.json()[-2:]} == guests


def test_chat_two_signed_in_users_see_each_others_messages(
    built: None, jwt_seed_server: Server, new_context: NewContext
) -> None:
    contexts = [new_context(), new_context()]
    users = [sign_in(ctx, jwt_seed_server) for ctx in contexts]
    first, second = (open_seed(ctx, jwt_seed_server, "seed-chat") for ctx in contexts)
    chat_between(first, second)
    # Both joined `general` on connect and sent as themselves.
    r = contexts[0].request.get(f"{jwt_seed_server.url}/chat/room/general/history")
    assert r.status == 200, r.text()
    assert {m["user_id"] for m in r.json()[-2:]} == {u["id"] for u in users}


def notify(server: Server, user_id: str, data: dict[str, Any]) -> None:
    r = httpx.post(
        f"{server.url}/server/users/{user_id}/notifications",
        json={"event": "order.shipped", "data": data},
        headers={"Authorization": f"Bearer {SERVER_KEY}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text


def warm_up(page: Page, server: Server, user_id: str) -> None:
    """``onopen`` fires with the response's headers, which may be a moment before the stream
    listens: notify until one shows, so the real exchange starts on a listening stream."""
    for n in range(20):
        notify(server, user_id, {"warm_up": n})
        try:
            expect(page.get_by_role("status")).to_have_text(f'{{"warm_up":{n}}}', timeout=750)
            return
        except AssertionError:
            continue
    raise AssertionError("the page never showed a notification")


def test_notifications_show_what_the_backend_sent(
    built: None, jwt_seed_server: Server, new_context: NewContext
) -> None:
    ctx = new_context()
    me = sign_in(ctx, jwt_seed_server)
    page = open_seed(ctx, jwt_seed_server, "seed-notifications")
    # The seed shows "Reconnecting..." until its EventSource is open.
    expect(page.get_by_text("Reconnecting...")).to_have_count(0)
    toast = page.get_by_role("status")
    expect(toast).to_have_count(0)  # nothing yet: a fresh stream is live only
    warm_up(page, jwt_seed_server, me["id"])
    for n in (1, 2):
        data = {"title": f"Your order {n} shipped", "order": n, "items": ["🧦", "<b>x</b>"]}
        notify(jwt_seed_server, me["id"], data)
        expect(toast).to_have_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    # Someone else's notification never shows here.
    other = new_context()
    someone = sign_in(other, jwt_seed_server)
    notify(jwt_seed_server, someone["id"], {"title": "not yours"})
    page.wait_for_timeout(500)
    expect(toast).not_to_contain_text("not yours")
    assert not ERRORS.get(page), ERRORS.get(page)
