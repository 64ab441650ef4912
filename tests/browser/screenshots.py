"""Screenshots of the web app for the README: ``make screenshots`` (``python -m
tests.browser.screenshots``). Starts its own server with a little conversation in it and saves
``docs/screenshots/*.png``. Not a test: run it after changing the app's look."""

from __future__ import annotations

import base64
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, FAST_ENV
from tests.browser.ui import PASSWORD, ChatUser
from tests.support import Server

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"viewport": {"width": 1280, "height": 800}, "device_scale_factor": 1}
PHONE = {
    "viewport": {"width": 390, "height": 780},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}

PAINT = """() => {
  const c = document.createElement('canvas');
  c.width = 640; c.height = 400;
  const g = c.getContext('2d');
  const sky = g.createLinearGradient(0, 0, 0, 400);
  sky.addColorStop(0, '#2b1d5c'); sky.addColorStop(0.55, '#e0607e'); sky.addColorStop(1, '#ffb36b');
  g.fillStyle = sky; g.fillRect(0, 0, 640, 400);
  g.fillStyle = '#ffe6a8'; g.beginPath(); g.arc(420, 250, 62, 0, Math.PI * 2); g.fill();
  const hills = [['#3d2a5e', 300, [0, 260, 120, 210, 260, 250, 400, 200, 520, 240, 640, 215]],
                 ['#241a3d', 340, [0, 310, 150, 270, 300, 320, 460, 280, 640, 300]]];
  for (const [color, base, pts] of hills) {
    g.fillStyle = color; g.beginPath(); g.moveTo(0, 400);
    for (let i = 0; i < pts.length; i += 2) g.lineTo(pts[i], pts[i + 1]);
    g.lineTo(640, 400); g.closePath(); g.fill();
  }
  g.fillStyle = 'rgba(255,255,255,0.85)';
  let seed = 7;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (let i = 0; i < 60; i++) g.fillRect(rnd() * 640, rnd() * 170, 2, 2);
  return c.toDataURL('image/png').split(',')[1];
}"""


def person(browser: Browser, server: Server, name: str, **kw: object) -> ChatUser:
    ctx: BrowserContext = browser.new_context(**{**DESKTOP, **kw})  # type: ignore[arg-type]
    user = ChatUser(ctx, server, name)
    creds = {"username": name, "password": PASSWORD}
    user.api("POST", "/auth/register", creds)
    assert user.api("POST", "/auth/login", creds).status == 200
    return user


def shot(page: Page, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    page.screenshot(path=str(OUT / name))
    print("saved", OUT / name)


def main() -> int:
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: make browser-deps", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        server = Server(Path(tmp), auth="jwt", env=dict(FAST_ENV)).start()
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            run(browser, server)
        finally:
            browser.close()
            server.stop()
    return 0


def run(browser: Browser, server: Server) -> None:
    # the sign-in screen
    visitor = ChatUser(browser.new_context(**DESKTOP), server, "visitor")  # type: ignore[arg-type]
    visitor.page.goto(server.url + "/")
    visitor.page.get_by_label("Username").fill("maya")
    shot(visitor.page, "login.png")

    maya = person(browser, server, "maya")
    leo = person(browser, server, "leo")
    ana = person(browser, server, "ana")

    def room(owner: ChatUser, name: str, visibility: str = "public") -> str:
        r = owner.api("POST", "/chat/rooms", {"name": name, "visibility": visibility})
        room_id: str = r.json()["id"]
        return room_id

    design = room(maya, "design")
    general = room(leo, "general")
    launch = room(ana, "launch-plan", "private")
    room(leo, "random")
    for user in (leo, ana):
        user.api("POST", f"/chat/room/{design}/join", {})
    for user in (maya, ana):
        user.api("POST", f"/chat/room/{general}/join", {})
    ana.api("POST", f"/chat/room/{launch}/members", {"username": "maya"})

    leo.api_send(general, "Standup moved to 10:15 today ☕")
    ana.api_send(launch, "Press kit is ready for review")
    ana.api_send(launch, "Can someone check the pricing table?")

    maya.page.goto(server.url + "/")
    picture = base64.b64decode(maya.page.evaluate(PAINT))
    maya.api_send(design, "Morning! I pushed the new onboarding flow to staging 🎉")
    leo.api_send(design, "Nice. The empty states look so much better now.")
    ana.api_send(design, "Agreed. One thing: the illustration on step 3 feels heavy on phones.")
    ana.api_send(design, "Maybe a lighter palette? Something like this:")
    up = ana.ctx.request.post(
        f"{server.url}/chat/room/{design}/files",
        multipart={
            "file": {"name": "dusk-palette.png", "mimeType": "image/png", "buffer": picture},
            "message": "Dusk palette, exported at 2x",
        },
    )
    image_msg = up.json()["message"]
    last = maya.api_send(
        design, "Love it. Let's try it on step 3 and the empty inbox.\nI'll update the Figma file."
    )
    leo.api("POST", f"/chat/messages/{image_msg['id']}/reactions", {"reaction": "😍"})
    maya.api("POST", f"/chat/messages/{image_msg['id']}/reactions", {"reaction": "😍"})
    leo.api("POST", f"/chat/messages/{last['id']}/reactions", {"reaction": "👍"})
    ana.api("POST", f"/chat/messages/{last['id']}/reactions", {"reaction": "🎉"})

    # everyone online; leo starts typing in #design
    for user in (leo, ana):
        user.page.goto(f"{server.url}/#/room/{design}")
        user.wait_connected()
    maya.page.goto(f"{server.url}/#/room/{design}")
    maya.wait_connected()
    expect(maya.page.locator("#message-lists figure.image img")).to_be_visible()
    maya.page.wait_for_function(
        "() => [...document.querySelectorAll('#message-lists img')].every((i) => i.complete)"
    )
    maya.page.locator("#messages").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    leo.composer.press_sequentially("Sounds good")
    expect(maya.page.locator("#typing")).to_contain_text("leo is typing")
    maya.composer.focus()
    shot(maya.page, "chat.png")

    # search
    maya.page.get_by_label("Search messages").fill("palette")
    maya.page.get_by_label("Search messages").press("Enter")
    expect(maya.page.locator("#search-results .result")).to_have_count(2)
    shot(maya.page, "search.png")

    # a phone: the room list, then the conversation
    phone = ChatUser(browser.new_context(**PHONE), server, "maya")  # type: ignore[arg-type]
    phone.sign_in()
    expect(phone.room_button(general).locator(".badge")).to_be_visible()
    shot(phone.page, "phone-rooms.png")
    phone.open_room(design)
    expect(phone.page.locator("#message-lists figure.image img")).to_be_visible()
    phone.page.wait_for_timeout(400)
    phone.page.locator("#messages").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    shot(phone.page, "phone.png")

    # the reconnecting banner (the stream is cut off for this tab)
    maya.page.get_by_label("Search messages").press("Escape")
    maya.ctx.route("**/chat/events*", lambda route: route.abort())
    server.stop()
    expect(maya.page.locator("#banner")).to_be_visible()
    shot(maya.page, "reconnecting.png")
    server.start()


if __name__ == "__main__":
    raise SystemExit(main())
