"""The web app at ``/``, in a real browser: two people chat, type, react, edit, delete, share
files, search, and see each other's presence; history loads on scroll-up; unread badges;
message text is only ever text; keyboard only."""

from __future__ import annotations

import base64
import re

from playwright.sync_api import expect

from tests.browser.conftest import NewContext
from tests.browser.ui import PASSWORD, ChatUser, pair, png, unique
from tests.support import Server


def test_sign_up_sign_out_and_sign_in(new_context: NewContext, app_server: Server) -> None:
    name = unique("dana")
    dana = ChatUser(new_context(), app_server, name)
    page = dana.page
    response = page.goto(app_server.url + "/")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'self'" in csp
    assert "object-src 'none'" in csp and "frame-ancestors 'none'" in csp
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    dana.sign_up()
    expect(page.locator("#no-rooms")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.reload()  # the session really ended: not signed in after a reload either
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").first).to_have_text("Wrong username or password.")

    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#auth-error")).to_contain_text("taken")

    page.get_by_role("button", name="Sign in", exact=True).click()  # back to signing in
    dana.sign_in()
    dana.assert_clean()


def test_two_people_chat_type_react_edit_and_delete(
    new_context: NewContext, app_server: Server
) -> None:
    alice, bob, _room = pair(new_context, app_server)

    # both see each other online in the member list
    expect(alice.page.locator("#member-list li", has_text=bob.name)).to_have_attribute(
        "data-presence", "online"
    )
    expect(bob.page.locator("#member-list li", has_text=alice.name)).to_have_attribute(
        "data-presence", "online"
    )

    alice.send("Hi Bob!")
    expect(bob.texts()).to_have_text(["Hi Bob!"])
    bob.send("Hi Alice.\nTwo lines, one message.")
    expect(alice.texts()).to_have_text(["Hi Bob!", "Hi Alice.\nTwo lines, one message."])

    # Shift+Enter is a new line, Enter sends
    bob.composer.press_sequentially("first line")
    expect(alice.page.locator("#typing")).to_have_text(f"{bob.name} is typing…")
    bob.composer.press("Shift+Enter")
    bob.composer.press_sequentially("second line")
    expect(bob.composer).to_have_value("first line\nsecond line")
    bob.composer.press("Enter")
    expect(bob.composer).to_have_value("")
    expect(alice.texts().last).to_have_text("first line\nsecond line")
    expect(alice.page.locator("#typing")).to_have_text("")

    # reactions, both ways
    target = alice.message("first line")
    target.hover()
    target.get_by_role("button", name="Add a reaction").click()
    alice.page.get_by_role("button", name="React with 👍").click()
    on_bob = bob.message("first line").locator(".reaction")
    expect(on_bob).to_have_text(["👍1"])
    expect(on_bob).to_have_attribute("aria-pressed", "false")
    on_bob.click()
    expect(alice.message("first line").locator(".reaction")).to_have_text(["👍2"])
    expect(bob.message("first line").locator(".reaction")).to_have_attribute("aria-pressed", "true")

    # edit and delete own messages; the other side sees both
    mine = alice.message("Hi Bob!")
    mine.hover()
    mine.get_by_role("button", name="Edit").click()
    box = alice.page.get_by_label("Edit message")
    box.fill("Hi Bob! (edited)")
    box.press("Enter")
    edited = bob.messages().first
    expect(edited.locator(".text")).to_have_text("Hi Bob! (edited)")
    expect(edited.locator(".edited")).to_be_visible()
    # only your own messages have Edit and Delete
    theirs = alice.message("Two lines")
    theirs.hover()
    expect(theirs.get_by_role("button", name="Edit")).to_have_count(0)
    expect(theirs.get_by_role("button", name="Delete")).to_have_count(0)

    mine = alice.message("Hi Bob! (edited)")
    mine.hover()
    mine.get_by_role("button", name="Delete").click()
    alice.page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(bob.messages().first.locator(".tombstone")).to_have_text("This message was deleted.")
    expect(alice.messages().first.locator(".tombstone")).to_be_visible()
    expect(bob.messages()).to_have_count(3)

    alice.assert_clean()
    bob.assert_clean()


def test_file_upload_drag_and_drop_and_picker(new_context: NewContext, app_server: Server) -> None:
    alice, bob, _room = pair(new_context, app_server)
    image = png()

    # drag and drop an image onto the conversation
    alice.page.evaluate(
        """([b64, name]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: 'image/png' }));
            const pane = document.getElementById('room-pane');
            const fire = (type) => pane.dispatchEvent(
                new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
            fire('dragenter');
            fire('dragover');
            window.__overlay = !document.getElementById('drop-overlay').hidden;
            fire('drop');
        }""",
        [base64.b64encode(image).decode(), "sunset.png"],
    )
    assert alice.page.evaluate("window.__overlay") is True
    expect(alice.page.locator("#drop-overlay")).to_be_hidden()

    preview = bob.messages().locator("figure.image img")
    expect(preview).to_have_attribute("alt", "sunset.png")
    bob.page.wait_for_function(
        "() => { const i = document.querySelector('#message-lists figure.image img');"
        " return i && i.complete && i.naturalWidth === 96; }"
    )
    expect(alice.messages().locator("figure.image img")).to_have_count(1)

    # the file picker, with a document (a download card, not a preview)
    with alice.page.expect_file_chooser() as chooser:
        alice.page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"meeting at noon\n"}]
    )
    card = bob.messages().locator("a.file-card")
    expect(card).to_contain_text("notes.txt")
    href = card.get_attribute("href")
    assert href is not None
    download = bob.ctx.request.get(app_server.url + href)
    assert download.status == 200 and download.body() == b"meeting at noon\n"
    expect(bob.messages()).to_have_count(2)
    alice.assert_clean()
    bob.assert_clean()


def test_presence_online_then_offline(new_context: NewContext, app_server: Server) -> None:
    alice, bob, _room = pair(new_context, app_server)
    entry = alice.page.locator("#member-list li", has_text=bob.name)
    expect(entry).to_have_attribute("data-presence", "online")
    expect(alice.page.locator("#room-sub")).to_contain_text("2 members · 2 online")
    bob.ctx.close()  # bob's tab goes away: offline after the grace period (1 s here)
    expect(entry).to_have_attribute("data-presence", "offline")
    expect(alice.page.locator("#room-sub")).to_contain_text("2 members · 1 online")


def test_room_list_unread_badges_and_last_message(
    new_context: NewContext, app_server: Server
) -> None:
    alice, bob, general = pair(new_context, app_server)
    side = bob.create_room(unique("side-"))
    # alice joins the second room (through the API with her cookies): her room list follows
    assert alice.api("POST", f"/chat/room/{side}/join", {}).status == 200
    badge_room = alice.room_button(side)
    expect(badge_room).to_be_visible()
    expect(alice.page.locator("#my-rooms .room")).to_have_count(2)

    alice.open_room(general)
    bob.send("one")
    bob.send("two")
    expect(badge_room.locator(".badge")).to_have_text("2")
    expect(badge_room.locator(".room-last")).to_have_text(f"{bob.name}: two")
    expect(alice.page).to_have_title("(2) Hubbub")

    alice.open_room(side)
    expect(alice.texts()).to_have_text(["one", "two"])
    expect(badge_room.locator(".badge")).to_have_count(0)
    expect(alice.page).to_have_title("Hubbub")
    # the read pointer is on the server: still read after a reload
    alice.page.reload()
    alice.wait_connected()
    expect(alice.room_button(side)).to_be_visible()
    expect(alice.room_button(side).locator(".badge")).to_have_count(0)

    # leave: the room goes back to the public list
    alice.open_room(side)
    alice.page.get_by_role("button", name="Leave").click()
    alice.page.get_by_role("dialog").get_by_role("button", name="Leave").click()
    expect(alice.page.locator(f'#public-rooms .room[data-room="{side}"]')).to_be_visible()
    expect(alice.page.locator(f'#my-rooms .room[data-room="{side}"]')).to_have_count(0)
    alice.assert_clean()


def test_history_loads_when_scrolling_up(new_context: NewContext, app_server: Server) -> None:
    alice = ChatUser(new_context(), app_server, unique("alice")).quick_sign_up()
    room = alice.create_room(unique("long-"))
    for i in range(1, 131):
        alice.api_send(room, f"message {i}")
    alice.page.reload()
    alice.wait_connected()
    alice.open_room(room)
    expect(alice.messages()).to_have_count(50)
    expect(alice.texts().last).to_have_text("message 130")

    box = alice.page.locator("#messages")
    for _ in range(10):
        if alice.page.locator("#history-status", has_text="beginning").count():
            break
        box.evaluate("el => { el.scrollTop = 0; }")
        alice.page.wait_for_timeout(150)
    expect(alice.page.locator("#history-status")).to_contain_text("This is the beginning")
    expect(alice.texts()).to_have_text([f"message {i}" for i in range(1, 131)])
    seqs = alice.messages().evaluate_all("els => els.map((e) => Number(e.dataset.seq))")
    assert seqs == list(range(1, 131))
    alice.assert_clean()


def test_search_finds_and_jumps_to_the_message(new_context: NewContext, app_server: Server) -> None:
    alice = ChatUser(new_context(), app_server, unique("alice")).quick_sign_up()
    room = alice.create_room(unique("search-"))
    alice.api_send(room, "the zebrafish were fed at dawn")
    for i in range(80):
        alice.api_send(room, f"filler {i}")
    alice.page.reload()
    alice.wait_connected()

    alice.page.keyboard.press("Control+k")
    expect(alice.page.get_by_label("Search messages")).to_be_focused()
    alice.page.keyboard.type("zebra")
    alice.page.keyboard.press("Enter")
    result = alice.page.locator("#search-results .result")
    expect(result).to_have_count(1)
    expect(result.locator("mark")).to_have_text("zebra")
    expect(result.locator(".result-text")).to_have_text("the zebrafish were fed at dawn")
    result.click()
    # the message is older than the first page: the room loads back to it and shows it
    found = alice.message("zebrafish")
    expect(found).to_be_focused()
    expect(found).to_have_class(re.compile(r"\bflash\b"))
    expect(found).to_be_in_viewport()

    alice.page.get_by_label("Search messages").fill("nothing-like-this")
    alice.page.get_by_label("Search messages").press("Enter")
    expect(alice.page.locator("#search-sub")).to_have_text("Nothing found.")
    alice.page.get_by_label("Search messages").press("Escape")
    expect(alice.page.locator("#room-pane")).to_be_visible()
    alice.assert_clean()


def test_message_text_is_shown_as_text_never_html(
    new_context: NewContext, app_server: Server
) -> None:
    alice, bob, room = pair(new_context, app_server)
    attacks = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        '<a href="javascript:alert(3)">click</a> &amp; &lt;b&gt;',
    ]
    bob.send(attacks[0])
    for text in attacks[1:]:
        bob.api_send(room, text)
    upload = bob.ctx.request.post(
        f"{app_server.url}/chat/room/{room}/files",
        multipart={
            "file": {
                "name": "<img src=x onerror=alert(4)>.png",
                "mimeType": "image/png",
                "buffer": png(),
            },
            "message": "<svg onload=alert(5)>",
        },
    )
    assert upload.status == 201, upload.text()

    for user in (alice, bob):
        expect(user.texts()).to_have_text([*attacks, "<svg onload=alert(5)>"])
        # no element came out of the text: only the one real image (the upload) exists
        assert user.page.locator("#message-lists script, #message-lists svg").count() == 0
        assert user.page.locator("#message-lists .text a, #message-lists .text img").count() == 0
        expect(user.page.locator("#message-lists img")).to_have_count(1)
        expect(user.page.locator("#message-lists figcaption .file-name")).to_have_text(
            "<img src=x onerror=alert(4)>.png"
        )
        expect(user.room_button(room).locator(".room-last")).to_contain_text("<svg onload")
    alice.page.wait_for_timeout(300)  # a dialog would have opened by now
    alice.assert_clean()
    bob.assert_clean()


def test_keyboard_only(new_context: NewContext, app_server: Server) -> None:
    """Sign up, open a room, send, edit, react — with the keyboard alone."""
    name = unique("kay")
    kay = ChatUser(new_context(), app_server, name)
    page, keys = kay.page, kay.page.keyboard
    page.goto(app_server.url + "/")
    expect(page.get_by_label("Username")).to_be_focused()
    keys.press("Shift+Tab")
    keys.press("Shift+Tab")  # skip link; then wrap around is the browser's business:
    page.get_by_label("Username").focus()  # start again from the first field
    keys.type(name)
    keys.press("Tab")
    keys.type(PASSWORD)
    for _ in range(3):
        keys.press("Tab")
        if page.evaluate("document.activeElement.id") == "auth-switch":
            break
    expect(page.locator("#auth-switch")).to_be_focused()
    keys.press("Enter")  # "Create an account"
    page.get_by_label("Password").focus()
    keys.press("Enter")  # submits the form
    expect(page.locator("#me-name")).to_have_text(name)
    kay.wait_connected()

    # create a room from the keyboard
    page.get_by_role("button", name="Create a room").focus()
    keys.press("Enter")
    expect(page.get_by_label("Room name")).to_be_focused()
    keys.type("keys")
    keys.press("Enter")
    expect(page.locator("#room-name")).to_contain_text("keys")
    expect(kay.composer).to_be_focused()

    keys.type("typed, not clicked")
    keys.press("Enter")
    expect(kay.texts()).to_have_text(["typed, not clicked"])

    # ↑ in the empty box edits your last message; Enter saves
    keys.press("ArrowUp")
    expect(page.get_by_label("Edit message")).to_be_focused()
    keys.press("End")
    keys.type(" (fixed)")
    keys.press("Enter")
    expect(kay.texts()).to_have_text(["typed, not clicked (fixed)"])
    expect(kay.composer).to_be_focused()

    # Shift+Tab from the composer reaches the message's actions; the picker is keyboard-driven
    for _ in range(12):
        keys.press("Shift+Tab")
        if page.evaluate("document.activeElement.getAttribute('aria-label')") == "Add a reaction":
            break
    expect(page.get_by_role("button", name="Add a reaction")).to_be_focused()
    keys.press("Enter")
    expect(page.get_by_role("button", name="React with 👍")).to_be_focused()
    keys.press("ArrowRight")
    expect(page.get_by_role("button", name="React with ❤️")).to_be_focused()
    keys.press("Enter")
    reaction = kay.messages().locator(".reaction")
    expect(reaction).to_have_text(["❤️1"])
    expect(reaction).to_be_focused()
    keys.press("Enter")  # toggles it off again
    expect(reaction).to_have_count(0)
    kay.assert_clean()


def test_phone_sized_screen(new_context: NewContext, app_server: Server) -> None:
    phone = {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    }
    pat = ChatUser(new_context(**phone), app_server, unique("pat")).quick_sign_up()
    page = pat.page
    sidebar, main = page.locator(".sidebar"), page.locator("section.main")
    expect(sidebar).to_be_visible()
    expect(main).to_be_hidden()

    room = pat.create_room(unique("pocket-"))
    expect(sidebar).to_be_hidden()
    expect(main).to_be_visible()
    pat.send("sent from a phone")
    expect(pat.texts()).to_have_text(["sent from a phone"])
    for locator in (pat.composer, page.get_by_role("button", name="Send"), pat.messages().first):
        box = locator.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
        assert box["y"] + box["height"] <= 844, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 390

    # tapping a message shows its actions
    pat.messages().first.locator(".text").tap()
    expect(pat.messages().first.get_by_role("button", name="Edit")).to_be_visible()

    page.get_by_role("button", name="Back to rooms").first.click()
    expect(sidebar).to_be_visible()
    expect(main).to_be_hidden()
    expect(pat.room_button(room).locator(".room-last")).to_have_text("You: sent from a phone")
    pat.assert_clean()
