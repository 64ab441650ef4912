"""A network drop in a real browser: the banner shows, and after the resume every message is
there exactly once, in order — while the other person kept sending."""

from __future__ import annotations

import time

from playwright.sync_api import Route, expect

from tests.browser.conftest import NewContext
from tests.browser.ui import pair
from tests.support import Server


def test_drop_and_resume_shows_every_message_once_in_order(
    new_context: NewContext, app_server: Server
) -> None:
    alice, bob, _room = pair(new_context, app_server)
    alice.send("before the drop")
    expect(bob.texts()).to_have_text(["before the drop"])

    # alice's connection to the stream goes away and stays away; the server restarts under
    # both of them (same port, same data)
    def cut(route: Route) -> None:
        route.abort("internetdisconnected")

    alice.ctx.route("**/chat/events*", cut)
    app_server.stop()
    for user in (alice, bob):
        expect(user.page.locator("#banner")).to_be_visible()
        expect(user.page.locator("#banner")).to_have_text("Reconnecting…")

    # bob sends while the server is down: his app keeps it and retries with the same
    # client_msg_id
    bob.send("sent while the server was down")
    pending = bob.page.locator("#message-lists li.pending")
    expect(pending).to_contain_text("retrying")
    time.sleep(0.5)
    app_server.start()
    expect(bob.page.locator("#banner")).to_be_hidden(timeout=15_000)
    expect(pending).to_have_count(0, timeout=15_000)

    sent = ["before the drop", "sent while the server was down"]
    for i in range(1, 6):
        text = f"while alice is away {i}"
        bob.send(text)
        sent.append(text)
        expect(bob.texts().last).to_have_text(text)
    expect(bob.texts()).to_have_text(sent)
    # alice is still cut off: nothing new reached her, and she is told so
    expect(alice.page.locator("#banner")).to_be_visible()
    expect(alice.texts()).to_have_text(["before the drop"])

    # her network comes back: the stream resumes where it stopped
    alice.ctx.unroute("**/chat/events*")
    expect(alice.page.locator("#banner")).to_be_hidden(timeout=20_000)
    expect(alice.texts()).to_have_text(sent)
    bob.send("after the resume")
    sent.append("after the resume")
    expect(alice.texts()).to_have_text(sent)
    time.sleep(0.5)  # nothing arrives twice later either
    expect(alice.texts()).to_have_text(sent)
    seqs = alice.messages().evaluate_all("els => els.map((e) => Number(e.dataset.seq))")
    assert seqs == list(range(1, len(sent) + 1))
    alice.assert_clean()
    bob.assert_clean()
