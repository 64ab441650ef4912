"""``new Hubbub({shareTabs: true})``: three tabs of one browser share ONE ``/chat/events``.

The tabs open a small page on the server's origin (answered by Playwright, ``context.route``:
the server has no test pages) that imports ``/static/hubbub.js`` and records every message it
is given. Someone else sends over plain HTTP. The server's own ``/metrics`` gauge and the
browser's requests both count the streams; every tab must see every message exactly once and
in order — also when the leader tab closes and another takes the stream over while messages
keep coming.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Request, Route

from tests.browser.conftest import FAST_ENV, NewContext
from tests.browser.ui import PASSWORD, unique
from tests.support import Server

PAGE_PATH = "/__tabs__/page.html"
PAGE = """<!doctype html>
<title>tabs</title>
<script type="module">
import { Hubbub } from '/static/hubbub.js';
const hub = new Hubbub({ shareTabs: true });
window.hub = hub;
window.got = [];
window.connected = [];
window.reactions = [];
hub.on('message', (m) => window.got.push(m.text));
hub.on('reaction', (r) => window.reactions.push(r.reaction));
hub.on('connected', (c) => window.connected.push(hub.resumed));
hub.connect();
</script>
"""


@pytest.fixture(scope="module")
def tabs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: its ``hubbub_connections`` gauge counts this test's streams only."""
    server = Server(tmp_path_factory.mktemp("tabs"), auth="jwt", env=dict(FAST_ENV))
    server.start()
    yield server
    server.stop()


def sse_streams(server: Server) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    found = re.search(r'^hubbub_connections\{transport="sse"\} ([0-9.e+]+)$', text, re.M)
    assert found, "hubbub_connections{transport=sse} missing from /metrics"
    return float(found.group(1))


def wait_for(what: str, check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def open_tab(ctx: BrowserContext, server: Server) -> Page:
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + PAGE_PATH)
    page.wait_for_function("window.hub && window.hub.state === 'open'")
    assert errors == []
    return page


def got(page: Page) -> list[str]:
    texts: list[str] = page.evaluate("window.got")
    return texts


def leaders(pages: list[Page]) -> list[Page]:
    return [p for p in pages if p.evaluate("window.hub.leader")]


def test_three_tabs_share_one_stream_and_hand_it_over(
    new_context: NewContext, tabs_server: Server
) -> None:
    server = tabs_server
    name, other = unique("tabs"), unique("sender")
    ctx = new_context()
    ctx.route(
        "**" + PAGE_PATH,
        lambda route: route.fulfill(status=200, content_type="text/html", body=PAGE),
    )
    streams: list[str] = []

    def on_request(request: Request) -> None:
        if "/chat/events" in request.url:
            streams.append(request.url)

    ctx.on("request", on_request)
    creds = {"username": name, "password": PASSWORD}
    assert ctx.request.post(server.url + "/auth/register", data=creds).status == 201
    assert ctx.request.post(server.url + "/auth/login", data=creds).status == 200
    created = ctx.request.post(server.url + "/chat/rooms", data={"name": unique("tabs-")})
    assert created.status == 201, created.text()
    room = created.json()["id"]

    # A fourth party: another user, plain HTTP, no browser.
    sender = httpx.Client(base_url=server.url, timeout=10)
    sender.post("/auth/register", json={"username": other, "password": PASSWORD})
    token = sender.post("/auth/login", json={"username": other, "password": PASSWORD}).json()
    sender.headers["Authorization"] = f"Bearer {token['access_token']}"
    assert sender.post(f"/chat/room/{room}/join", json={}).status_code == 200

    def send(text: str) -> str:
        r = sender.post("/chat/messages", json={"room_id": room, "message": text})
        assert r.status_code == 201, r.text
        message_id: str = r.json()["message"]["id"]
        return message_id

    pages = [open_tab(ctx, server) for _ in range(3)]
    assert len(leaders(pages)) == 1
    assert len(streams) == 1, streams  # the browser asked for one stream, not three
    wait_for("one stream on the server", lambda: sse_streams(server) == 1)
    assert [p.evaluate("window.connected") for p in pages] == [[False]] * 3

    first = [f"m{i}" for i in range(20)]
    ids = [send(text) for text in first]
    for page in pages:
        wait_for("every message in every tab", lambda page=page: len(got(page)) >= len(first))
    time.sleep(0.3)  # a duplicate would arrive just after
    assert [got(p) for p in pages] == [first] * 3  # each once, in order, in every tab

    # The leader goes away; messages keep coming while nobody holds the stream: the next
    # leader's request for it is held back until they are all stored.
    held: list[Route] = []
    ctx.route("**/chat/events**", lambda route: held.append(route))
    leader = leaders(pages)[0]
    rest = [p for p in pages if p is not leader]
    leader.close()
    wait_for("a new leader", lambda: len(leaders(rest)) == 1)
    wait_for("its stream request", lambda: (rest[0].wait_for_timeout(20), len(held))[1] == 1)
    during = [f"h{i}" for i in range(10)]
    for text in during:
        send(text)
    # A stored change that is not a message (no seq to drop a repeat by: only its id).
    reacted = sender.post(f"/chat/messages/{ids[0]}/reactions", json={"reaction": "👍"})
    assert reacted.status_code in (200, 201), reacted.text
    rest[0].wait_for_timeout(300)
    assert [got(p) for p in rest] == [first] * 2  # nobody streamed them yet
    held[0].continue_()
    after = [f"a{i}" for i in range(5)]
    for text in after:
        send(text)
    everything = first + during + after
    for page in rest:
        wait_for("the hand-over's messages", lambda page=page: len(got(page)) >= len(everything))
    time.sleep(0.3)
    assert [got(p) for p in rest] == [everything] * 2  # nothing lost, nothing twice
    assert [p.evaluate("window.reactions") for p in rest] == [["👍"]] * 2

    assert len(streams) == 2, streams  # the new leader's, resuming from the last id seen
    assert "last_event_id=" in streams[1]
    wait_for("still one stream on the server", lambda: sse_streams(server) == 1)
    # Both remaining tabs were told the new stream resumed (apply events, reload nothing).
    assert [p.evaluate("window.connected") for p in rest] == [[False, True]] * 2
    sender.close()


def test_a_tab_that_closes_its_client_hands_over_and_leaves_no_stream(
    new_context: NewContext, tabs_server: Server
) -> None:
    """``hub.close()`` in the leader releases the stream to the other tab; closing the last
    client leaves no stream open on the server."""
    server = tabs_server
    name = unique("closer")
    ctx = new_context()
    ctx.route(
        "**" + PAGE_PATH,
        lambda route: route.fulfill(status=200, content_type="text/html", body=PAGE),
    )
    creds = {"username": name, "password": PASSWORD}
    assert ctx.request.post(server.url + "/auth/register", data=creds).status == 201
    assert ctx.request.post(server.url + "/auth/login", data=creds).status == 200
    room = ctx.request.post(server.url + "/chat/rooms", data={"name": unique("c-")}).json()["id"]
    pages = [open_tab(ctx, server) for _ in range(2)]
    leader = leaders(pages)[0]
    follower = next(p for p in pages if p is not leader)
    leader.evaluate("window.hub.close()")
    wait_for("the follower to lead", lambda: follower.evaluate("window.hub.leader"))
    follower.wait_for_function("window.hub.state === 'open'")
    assert leader.evaluate("[window.hub.leader, window.hub.state]") == [False, "closed"]
    wait_for("one stream", lambda: sse_streams(server) == 1)
    sent = ctx.request.post(server.url + "/chat/messages", data={"room_id": room, "message": "x"})
    assert sent.status == 201
    wait_for("the message", lambda: got(follower) == ["x"])
    assert got(leader) == []  # a closed client gets nothing
    follower.evaluate("window.hub.close()")
    wait_for("no stream", lambda: sse_streams(server) == 0)
