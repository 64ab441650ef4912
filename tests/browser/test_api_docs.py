"""``/docs`` in a real browser: Swagger UI served by Hubbub itself under its strict CSP. Someone
opens it, tries a protected route (401), clicks Authorize, pastes their access token, tries again
and gets their rooms (200, the request carried ``Authorization: Bearer``) — and the page never
talked to another origin, tripped the CSP, or threw."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import Request, expect

from tests.browser.conftest import NewContext
from tests.browser.ui import CSP_RECORDER, PASSWORD, unique
from tests.support import Server


def test_authorize_then_try_a_protected_route(new_context: NewContext, app_server: Server) -> None:
    ctx = new_context()
    # A registered user, signed in through the API: the browser itself holds no cookie.
    name = unique("docs")
    creds = {"username": name, "password": PASSWORD}
    api = ctx.request
    assert api.post(app_server.url + "/auth/register", data=creds).status == 201
    login = api.post(app_server.url + "/auth/login", data=creds)
    assert login.status == 200, login.text()
    token = login.json()["access_token"]
    room = unique("docs-room-")
    made = api.post(
        app_server.url + "/chat/rooms",
        data={"name": room, "id": room},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert made.status == 201, made.text()
    ctx.clear_cookies()  # only the Authorize dialog may identify the page's requests

    origin = urlsplit(app_server.url).netloc
    requests: list[Request] = []
    errors: list[str] = []
    ctx.add_init_script(CSP_RECORDER)
    page = ctx.new_page()
    page.on("request", lambda r: requests.append(r))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    response = page.goto(app_server.url + "/docs")
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Hubbub")

    rooms = page.locator(".opblock-get").filter(
        has=page.locator('.opblock-summary-path[data-path="/chat/rooms"]')
    )
    rooms.locator(".opblock-summary").click()
    rooms.get_by_role("button", name="Try it out").click()
    execute = rooms.get_by_role("button", name="Execute")
    status = rooms.locator(".live-responses-table .response .response-col_status")
    body = rooms.locator(".live-responses-table .response .response-col_description")

    # Not authorized yet: the server says so, in its own error shape.
    execute.click()
    expect(status).to_have_text("401")
    expect(body).to_contain_text("not_authenticated")

    page.locator(".auth-wrapper .authorize").click()
    dialog = page.locator(".dialog-ux .modal-ux")
    bearer = dialog.locator(".auth-container").filter(has_text="bearerAuth")
    bearer.locator("input").fill(token)
    bearer.locator("button.authorize").click()  # its accessible name: "Apply credentials"
    expect(bearer.locator("button", has_text="Logout")).to_be_visible()
    bearer.locator("button.btn-done").click()
    expect(dialog).to_have_count(0)

    with page.expect_request(lambda r: urlsplit(r.url).path == "/chat/rooms") as sent:
        rooms.get_by_role("button", name="Clear").click()
        execute.click()
    assert sent.value.headers.get("authorization") == f"Bearer {token}"
    expect(status).to_have_text("200")
    expect(body).to_contain_text(room)

    foreign = [r.url for r in requests if urlsplit(r.url).scheme in ("http", "https")]
    foreign = [u for u in foreign if urlsplit(u).netloc != origin]
    assert foreign == []
    assert page.evaluate("window.__csp") == []
    # The one error the browser logs is the first try's 401 — nothing else went wrong.
    assert errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
