"""A person using the web app, as the browser tests drive it (a small page object)."""

from __future__ import annotations

import itertools
import struct
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from playwright.sync_api import APIResponse, BrowserContext, Locator, Page, expect

from tests.support import Server

if TYPE_CHECKING:
    from tests.browser.conftest import NewContext

PASSWORD = "correct-horse-42"
_ids = itertools.count(1)

# Record what a strict CSP blocks: the app must never trip it (no inline script or style).
CSP_RECORDER = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline'));
});
"""


def unique(name: str) -> str:
    return f"{name}{next(_ids)}"


def png(width: int = 96, height: int = 64) -> bytes:
    """A small valid PNG (a colour gradient), made here: no test asset files."""
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 255 // width, y * 255 // height, 200)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class ChatUser:
    def __init__(self, ctx: BrowserContext, server: Server, name: str) -> None:
        self.ctx = ctx
        self.server = server
        self.name = name
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        ctx.add_init_script(CSP_RECORDER)
        self.page: Page = ctx.new_page()
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    # accounts ---------------------------------------------------------------------------------

    def sign_up(self) -> ChatUser:
        page = self.page
        page.goto(self.server.url + "/")
        page.get_by_role("button", name="Create an account").click()
        page.get_by_label("Username").fill(self.name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.locator("#me-name")).to_have_text(self.name)
        self.wait_connected()
        return self

    def sign_in(self) -> ChatUser:
        page = self.page
        page.goto(self.server.url + "/")
        page.get_by_label("Username").fill(self.name)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#me-name")).to_have_text(self.name)
        self.wait_connected()
        return self

    def quick_sign_up(self) -> ChatUser:
        """Register and sign in through the API with this browser's cookie jar, then open the
        app (signed in already). The UI forms have their own test."""
        creds = {"username": self.name, "password": PASSWORD}
        assert self.api("POST", "/auth/register", creds).status == 201
        assert self.api("POST", "/auth/login", creds).status == 200
        self.page.goto(self.server.url + "/")
        expect(self.page.locator("#me-name")).to_have_text(self.name)
        self.wait_connected()
        return self

    def wait_connected(self) -> None:
        expect(self.page.locator("body")).to_have_attribute("data-connection", "open")

    # rooms ------------------------------------------------------------------------------------

    def create_room(self, name: str, *, private: bool = False) -> str:
        page = self.page
        page.get_by_role("button", name="Create a room").click()
        page.get_by_label("Room name").fill(name)
        if private:
            page.get_by_label("Private", exact=False).check()
        page.get_by_role("button", name="Create", exact=True).click()
        expect(page.locator("#room-name")).to_contain_text(name)
        page.wait_for_url("**/#/room/*")
        return unquote(page.url.rsplit("#/room/", 1)[1])

    def room_button(self, room_id: str) -> Locator:
        return self.page.locator(f'.room[data-room="{room_id}"]')

    def open_room(self, room_id: str) -> None:
        self.room_button(room_id).click()
        expect(self.page.locator("#room-pane")).to_be_visible()
        expect(self.page.locator(f'.message-list[data-room="{room_id}"]')).to_be_attached()

    def join_room(self, room_id: str) -> None:
        self.open_room(room_id)
        self.page.get_by_role("button", name="Join room").click()
        expect(self.page.get_by_label("Message", exact=True)).to_be_visible()

    # messages ---------------------------------------------------------------------------------

    @property
    def composer(self) -> Locator:
        return self.page.get_by_label("Message", exact=True)

    def send(self, text: str) -> None:
        self.composer.fill(text)
        self.composer.press("Enter")

    def messages(self) -> Locator:
        """The stored messages shown in the open room (not pending sends)."""
        return self.page.locator("#message-lists li.msg[data-seq]")

    def texts(self) -> Locator:
        return self.page.locator("#message-lists li.msg[data-seq] .text")

    def message(self, text: str) -> Locator:
        return self.messages().filter(has=self.page.locator(".text", has_text=text))

    # the server, with this browser's cookies --------------------------------------------------

    def api(self, method: str, path: str, body: Any = None) -> APIResponse:
        return self.ctx.request.fetch(self.server.url + path, method=method, data=body)

    def api_send(self, room_id: str, text: str) -> dict[str, Any]:
        r = self.api("POST", "/chat/messages", {"room_id": room_id, "message": text})
        assert r.status == 201, r.text()
        message: dict[str, Any] = r.json()["message"]
        return message

    def assert_clean(self) -> None:
        """No JavaScript error, no dialog, no CSP violation."""
        assert self.errors == [], self.errors
        assert self.dialogs == [], self.dialogs
        assert self.page.evaluate("window.__csp") == []


def pair(new_context: NewContext, server: Server) -> tuple[ChatUser, ChatUser, str]:
    """alice creates a public room; bob joins it through the public room list."""
    alice = ChatUser(new_context(), server, unique("alice")).quick_sign_up()
    room = alice.create_room(unique("general-"))
    bob = ChatUser(new_context(), server, unique("bob")).quick_sign_up()
    bob.join_room(room)
    return alice, bob, room


def api_user(new_context: NewContext, server: Server, name: str) -> ChatUser:
    """Someone who only uses the HTTP API (own cookie jar, signed in; the app is not opened)."""
    user = ChatUser(new_context(), server, name)
    creds = {"username": name, "password": PASSWORD}
    assert user.api("POST", "/auth/register", creds).status == 201
    assert user.api("POST", "/auth/login", creds).status == 200
    return user
