"""``hubbub.js``, the app's client module, in the browser: sends are retried with one
``client_msg_id`` (so a lost answer never makes a duplicate), errors that retrying cannot fix
are not retried, and search highlights are cut by code points."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Route, expect

from tests.browser.conftest import NewContext
from tests.browser.ui import ChatUser, unique
from tests.support import Server

SEND = """async ([room, text]) => {
  const { Hubbub } = await import('/static/hubbub.js');
  const hub = new Hubbub({ backoff: () => 100 });
  const retries = [];
  try {
    const message = await hub.send(room, text, {
      onRetry: ({ attempt, delay, error }) => retries.push([attempt, delay, error.status ?? 0]),
    });
    return { message, retries };
  } catch (error) {
    return { error: { name: error.name, status: error.status, code: error.code }, retries };
  }
}"""


def test_send_retries_with_one_client_msg_id(new_context: NewContext, app_server: Server) -> None:
    alice = ChatUser(new_context(), app_server, unique("alice")).quick_sign_up()
    room = alice.create_room(unique("retry-"))
    keys: list[str] = []
    steps = iter(["503", "429", "drop", "stored-but-lost"])

    def flaky(route: Route) -> None:
        keys.append(route.request.post_data_json["client_msg_id"])
        step = next(steps, "pass")
        error = {"error": {"code": "x", "message": "try again"}}
        if step == "503":
            route.fulfill(status=503, json=error)
        elif step == "429":
            route.fulfill(status=429, json=error, headers={"Retry-After": "1"})
        elif step == "drop":
            route.abort("connectionreset")
        elif step == "stored-but-lost":  # the server stores it, the answer never arrives
            assert route.fetch().status == 201
            route.abort("connectionreset")
        else:
            route.continue_()

    alice.page.route("**/chat/messages", flaky)
    out: dict[str, Any] = alice.page.evaluate(SEND, [room, "retry me"])
    assert "error" not in out, out
    assert [status for _, _, status in out["retries"]] == [503, 429, 0, 0]
    assert [delay for _, delay, _ in out["retries"]] == [100, 1000, 100, 100]  # Retry-After: 1
    assert len(keys) == 5 and len(set(keys)) == 1 and keys[0].startswith("c-")
    assert out["message"]["client_msg_id"] == keys[0]
    assert out["message"]["text"] == "retry me"

    stored = alice.api("GET", f"/chat/room/{room}/history").json()
    assert [m["text"] for m in stored] == ["retry me"]
    expect(alice.texts()).to_have_text(["retry me"])  # and the stream showed it once


def test_send_does_not_retry_what_cannot_succeed(
    new_context: NewContext, app_server: Server
) -> None:
    alice = ChatUser(new_context(), app_server, unique("alice")).quick_sign_up()
    room = alice.create_room(unique("noretry-"))
    calls: list[str] = []
    alice.page.route("**/chat/messages", lambda r: (calls.append(r.request.url), r.continue_()))
    out = alice.page.evaluate(SEND, [room, "   "])
    assert out["error"] == {"name": "HubbubError", "status": 422, "code": "empty_message"}
    assert out["retries"] == [] and len(calls) == 1


def test_highlight_pieces_count_code_points(new_context: NewContext, app_server: Server) -> None:
    alice = ChatUser(new_context(), app_server, unique("alice")).quick_sign_up()
    pieces = alice.page.evaluate(
        """async () => {
          const { highlightPieces } = await import('/static/hubbub.js');
          return highlightPieces('👍 café zebra', [[2, 6], [7, 10]]);
        }"""
    )
    assert pieces == [
        {"text": "👍 ", "match": False},
        {"text": "café", "match": True},
        {"text": " ", "match": False},
        {"text": "zeb", "match": True},
        {"text": "ra", "match": False},
    ]
