"""Every change, live and after a reconnect, in a real browser: edits, deletes, reactions added
and removed, renames and membership reach a page that was offline once it is back — from the
resumed stream's replay, without a reload and without re-reading history. Removal from a room
takes effect at once; room admins rename and remove members from the app."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import APIResponse, Request, Route, expect

from tests.browser.conftest import NewContext
from tests.browser.ui import PASSWORD, ChatUser, api_user, pair, unique
from tests.support import Server


def server_reactions(user: ChatUser, room: str) -> dict[int, dict[str, set[str]]]:
    """seq → {emoji: {user ids}}, as the server has them."""
    r = user.api("GET", f"/chat/room/{room}/history?limit=200")
    assert r.status == 200, r.text()
    return {
        m["seq"]: {emoji: set(users) for emoji, users in m["reactions"].items() if users}
        for m in r.json()
    }


def page_reactions(user: ChatUser) -> dict[int, dict[str, int]]:
    """seq → {emoji: count}, as the page shows them."""
    shown: list[dict[str, Any]] = user.messages().evaluate_all(
        """els => els.map((li) => ({
            seq: Number(li.dataset.seq),
            reactions: Object.fromEntries([...li.querySelectorAll('.reaction')].map(
                (b) => [b.dataset.reaction, Number(b.querySelector('.count').textContent)])),
        }))"""
    )
    return {m["seq"]: m["reactions"] for m in shown}


def member_names(user: ChatUser, room: str) -> list[str]:
    r = user.api("GET", f"/chat/room/{room}/members")
    assert r.status == 200, r.text()
    return sorted(m["username"] for m in r.json()["members"])


def shown_member_names(user: ChatUser) -> list[str]:
    names: list[str] = user.page.locator("#member-list .member-name").all_text_contents()
    return sorted(n.removesuffix(" (you)") for n in names)


def test_changes_made_while_offline_show_after_the_resume_without_reload(
    new_context: NewContext, app_server: Server
) -> None:
    alice, bob, room = pair(new_context, app_server)
    texts = ["keep me", "edit me", "delete me", "react to me"]
    ids = {t: alice.api_send(room, t)["id"] for t in texts}
    expect(bob.texts()).to_have_text(texts)
    thumbs = f"/chat/messages/{ids['react to me']}/reactions"
    assert alice.api("POST", thumbs, {"reaction": "👍"}).status in (200, 201)
    assert bob.api("POST", thumbs, {"reaction": "🎉"}).status in (200, 201)
    expect(bob.message("react to me").locator(".reaction")).to_have_text(["👍1", "🎉1"])
    expect(bob.page.locator("#member-list .member")).to_have_count(2)
    bob.page.evaluate("window.__sameDocument = true")

    # bob's network goes away (the open stream with it)
    bob.ctx.set_offline(True)
    expect(bob.page.locator("#banner")).to_have_text("Reconnecting…")

    # meanwhile: an edit, a delete, reactions added and removed, a rename, people come and go
    assert alice.api("PATCH", f"/chat/messages/{ids['edit me']}", {"message": "edited"}).ok
    assert alice.api("DELETE", f"/chat/messages/{ids['delete me']}").ok
    assert alice.api("DELETE", f"{thumbs}/👍").ok
    assert alice.api("POST", thumbs, {"reaction": "❤️"}).ok
    assert alice.api("POST", f"/chat/messages/{ids['keep me']}/reactions", {"reaction": "😮"}).ok
    assert alice.api("POST", f"/chat/messages/{ids['keep me']}/reactions", {"reaction": "😂"}).ok
    assert alice.api("DELETE", f"/chat/messages/{ids['keep me']}/reactions/😮").ok
    new_name = unique("renamed-")
    assert alice.api("PATCH", f"/chat/room/{room}", {"name": new_name}).ok
    carol = api_user(new_context, app_server, unique("carol"))
    assert carol.api("POST", f"/chat/room/{room}/join", {}).ok
    carol.api_send(room, "hi, and bye")
    assert carol.api("POST", f"/chat/room/{room}/leave", {}).ok
    dave = api_user(new_context, app_server, unique("dave"))
    assert dave.api("POST", f"/chat/room/{room}/join", {}).ok
    assert dave.api("POST", f"/chat/messages/{ids['react to me']}/reactions", {"reaction": "❤️"}).ok

    # bob is back: the stream resumes by itself and replays it all
    history: list[str] = []

    def note(request: Request) -> None:
        if "/history" in request.url:
            history.append(request.url)

    bob.page.on("request", note)
    bob.ctx.set_offline(False)
    expect(bob.page.locator("#banner")).to_be_hidden(timeout=15_000)

    expect(bob.texts()).to_have_text(
        ["keep me", "edited", "This message was deleted.", "react to me", "hi, and bye"]
    )
    expect(bob.message("edited").locator(".edited")).to_have_text("(edited)")
    expect(bob.page.locator("#room-name")).to_have_text(f"# {new_name}")
    expect(bob.room_button(room).locator(".room-name")).to_have_text(new_name)
    expect(bob.page.locator("#history-status")).to_contain_text(new_name)
    expect(bob.page.locator("#member-list .member")).to_have_count(3)
    assert shown_member_names(bob) == member_names(alice, room)
    assert sorted([alice.name, bob.name, dave.name]) == member_names(alice, room)
    expect(bob.message("react to me").locator(".reaction")).to_have_text(["🎉1", "❤️2"])
    expect(bob.message("keep me").locator(".reaction")).to_have_text(["😂1"])

    on_server = server_reactions(alice, room)
    expected = {
        seq: {emoji: len(users) for emoji, users in reactions.items()}
        for seq, reactions in on_server.items()
    }
    assert page_reactions(bob) == expected
    assert expected[4] == {"🎉": 1, "❤️": 2}
    assert expected[1] == {"😂": 1}
    expect(bob.message("react to me").locator('.reaction[data-reaction="🎉"]')).to_have_attribute(
        "aria-pressed", "true"
    )

    # the page was not reloaded, and did not re-read history to get there: the events did it
    assert bob.page.evaluate("window.__sameDocument") is True
    assert history == []

    # and live again
    alice.send("welcome back")
    expect(bob.texts().last).to_have_text("welcome back")
    alice.assert_clean()
    bob.assert_clean()


def test_removed_from_a_private_room_drops_it_at_once(
    new_context: NewContext, app_server: Server
) -> None:
    alice, bob, _general = pair(new_context, app_server)

    # a new public room shows up in bob's list of public rooms as it is created
    lobby = alice.api("POST", "/chat/rooms", {"name": unique("lobby-"), "visibility": "public"})
    assert lobby.status == 201
    expect(
        bob.page.locator(f'#public-rooms .room[data-room="{lobby.json()["id"]}"]')
    ).to_be_visible()

    # invited to a private room: it appears in bob's rooms at once
    secret = alice.create_room(unique("secret-"), private=True)
    assert alice.api("POST", f"/chat/room/{secret}/members", {"username": bob.name}).status == 201
    expect(bob.page.locator(f'#my-rooms .room[data-room="{secret}"]')).to_be_visible()
    bob.open_room(secret)
    alice.send("only for us")
    expect(bob.texts()).to_have_text(["only for us"])

    # removed: within a couple of seconds the room is gone and bob is told
    assert alice.api("DELETE", f"/chat/room/{secret}/members/{user_id(bob)}").ok
    expect(bob.room_button(secret)).to_have_count(0, timeout=2_000)
    expect(bob.page.locator("#room-pane")).to_be_hidden(timeout=2_000)
    expect(bob.page.locator("#toast")).to_contain_text("no longer a member")
    alice.send("after bob left")
    expect(alice.texts().last).to_have_text("after bob left")
    expect(bob.page.get_by_text("after bob left")).to_have_count(0)

    # the same while bob is offline: removed from one room, added to another; on his return
    # the replay drops the one and brings the other
    attic = alice.api("POST", "/chat/rooms", {"name": unique("attic-"), "visibility": "private"})
    attic_id = attic.json()["id"]
    assert alice.api("POST", f"/chat/room/{attic_id}/members", {"username": bob.name}).ok
    expect(bob.room_button(attic_id)).to_be_visible()
    bob.ctx.set_offline(True)
    expect(bob.page.locator("#banner")).to_have_text("Reconnecting…")
    assert alice.api("DELETE", f"/chat/room/{attic_id}/members/{user_id(bob)}").ok
    den = alice.api("POST", "/chat/rooms", {"name": unique("den-"), "visibility": "private"})
    den_id = den.json()["id"]
    assert alice.api("POST", f"/chat/room/{den_id}/members", {"username": bob.name}).ok
    alice.api_send(den_id, "welcome to the den")
    bob.ctx.set_offline(False)
    expect(bob.page.locator("#banner")).to_be_hidden(timeout=15_000)
    expect(bob.room_button(attic_id)).to_have_count(0)
    expect(bob.room_button(den_id).locator(".room-last")).to_have_text(
        f"{alice.name}: welcome to the den"
    )
    bob.open_room(den_id)
    expect(bob.texts()).to_have_text(["welcome to the den"])
    alice.assert_clean()
    bob.assert_clean()


def test_a_room_list_read_before_a_live_change_does_not_undo_it(
    new_context: NewContext, app_server: Server
) -> None:
    """The page reads the room list after a join; a room created that the stream brings while
    that (older) list is still on its way stays shown when the list lands."""
    alice, bob, _general = pair(new_context, app_server)
    held: list[tuple[Route, APIResponse]] = []

    def hold(route: Route) -> None:
        if route.request.method != "GET":
            route.continue_()
            return
        held.append((route, route.fetch()))  # read now, answered later

    other = alice.api("POST", "/chat/rooms", {"name": unique("other-"), "visibility": "public"})
    other_id = other.json()["id"]
    expect(bob.page.locator(f'#public-rooms .room[data-room="{other_id}"]')).to_be_visible()
    bob.open_room(other_id)
    bob.page.route("**/chat/rooms", hold)
    bob.page.get_by_role("button", name="Join room").click()
    for _ in range(100):
        if held:
            break
        bob.page.wait_for_timeout(50)
    assert held, "the page did not read the room list after the join"

    # the list has been read; before it reaches the page, a public room is created
    lobby = alice.api("POST", "/chat/rooms", {"name": unique("lobby-"), "visibility": "public"})
    lobby_id = lobby.json()["id"]
    shown = bob.page.locator(f'#public-rooms .room[data-room="{lobby_id}"]')
    expect(shown).to_be_visible()

    for route, response in held:
        route.fulfill(response=response)
    bob.page.unroute("**/chat/rooms")
    # the join's flow goes on past the list read: it loads the members of the joined room
    expect(bob.page.locator("#member-list .member")).to_have_count(2)
    bob.page.wait_for_timeout(300)
    expect(shown).to_be_visible()
    expect(bob.page.locator(f'#my-rooms .room[data-room="{other_id}"]')).to_be_visible()
    alice.assert_clean()
    bob.assert_clean()


def user_id(user: ChatUser) -> str:
    r = user.api("GET", "/auth/me")
    assert r.status == 200
    found: str = r.json()["id"]
    return found


def test_admin_renames_the_room_and_removes_a_member_from_the_app(
    new_context: NewContext, app_server: Server
) -> None:
    alice, bob, room = pair(new_context, app_server)
    expect(alice.page.locator("#member-list .member")).to_have_count(2)

    # only the admin has the rename button and the remove buttons
    expect(bob.page.get_by_role("button", name="Rename room")).to_be_hidden()
    expect(bob.page.locator("#member-list .remove-member")).to_have_count(0)
    expect(
        alice.page.get_by_role("button", name=f"Remove {alice.name} from the room")
    ).to_have_count(0)

    new_name = unique("better-name-")
    alice.page.get_by_role("button", name="Rename room").click()
    box = alice.page.get_by_role("dialog").get_by_label("New name")
    expect(box).to_have_value(room_name(alice, room))
    box.fill(new_name)
    alice.page.get_by_role("dialog").get_by_role("button", name="Save").click()
    expect(alice.page.get_by_role("dialog")).to_be_hidden()
    for user in (alice, bob):
        expect(user.page.locator("#room-name")).to_have_text(f"# {new_name}")
        expect(user.room_button(room).locator(".room-name")).to_have_text(new_name)
    assert room_name(bob, room) == new_name

    alice.page.get_by_role("button", name=f"Remove {bob.name} from the room").click()
    dialog = alice.page.get_by_role("dialog")
    expect(dialog).to_contain_text(f"Remove {bob.name}?")
    dialog.get_by_role("button", name="Remove").click()
    expect(alice.page.locator("#member-list .member")).to_have_count(1)
    assert member_names(alice, room) == [alice.name]
    expect(alice.page.locator("#room-sub")).to_contain_text("1 member")

    # bob was looking at it: it closes, and the public room is back among the public rooms
    expect(bob.page.locator("#room-pane")).to_be_hidden(timeout=2_000)
    expect(bob.page.locator(f'#public-rooms .room[data-room="{room}"]')).to_be_visible()
    expect(bob.page.locator(f'#my-rooms .room[data-room="{room}"]')).to_have_count(0)
    expect(bob.page.locator("#toast")).to_contain_text("no longer a member")
    alice.assert_clean()
    bob.assert_clean()


def test_unread_badge_follows_my_reads_on_another_device(
    new_context: NewContext, app_server: Server
) -> None:
    alice, bob, _general = pair(new_context, app_server)
    side = alice.create_room(unique("side-"))
    assert bob.api("POST", f"/chat/room/{side}/join", {}).ok
    expect(bob.room_button(side)).to_be_visible()
    expect(bob.page.locator("#room-name")).to_contain_text("general-")
    for text in ("one", "two", "three"):
        alice.send(text)
    badge = bob.room_button(side).locator(".badge")
    expect(badge).to_have_text("3")

    # bob reads two of them on his phone (the same account, another client): the badge follows
    phone = new_context()
    phone.request.post(
        app_server.url + "/auth/login", data={"username": bob.name, "password": PASSWORD}
    )
    r = phone.request.post(app_server.url + f"/chat/room/{side}/read", data={"seq": 2})
    assert r.ok, r.text()
    expect(badge).to_have_text("1")
    r = phone.request.post(app_server.url + f"/chat/room/{side}/read", data={"seq": 3})
    assert r.ok, r.text()
    expect(badge).to_have_count(0)
    expect(bob.page).to_have_title("Hubbub")
    alice.assert_clean()
    bob.assert_clean()


def room_name(user: ChatUser, room: str) -> str:
    r = user.api("GET", f"/chat/room/{room}")
    assert r.status == 200, r.text()
    name: str = r.json()["name"]
    return name
