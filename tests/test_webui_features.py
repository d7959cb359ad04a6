"""The web UI's history, feedback, uploads, edit and resend, settings, theme and login.

Real ``triolet run`` of ``tests/webui_features.py``, real headless Chromium (see
``test_webui_browser.py`` for the harness rules): every wait is on a DOM state, never on time.
Screenshots go to ``test-output/webui/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import BROWSER_TIMEOUT
from tests.webui_harness import ROOT, axe_violations, shot, triolet_run

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.webui_harness import RunningServer

pytestmark = pytest.mark.chromium

APP = ROOT / "tests" / "webui_features.py"


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    # One server for the module: each test opens its own browser context (own storage), so
    # each gets its own anonymous sessions and threads.
    with triolet_run(APP) as running:
        yield running


def open_chat(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector(".chat-items >> text=Features ready.")
    page.wait_for_selector('.conn-state[data-state="connected"]')


def send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.keyboard.press("Enter")


def bodies(page: Page) -> list[str]:
    texts: list[str] = page.locator("article.msg .msg-body").all_inner_texts()
    return [t.strip() for t in texts]


def assert_accessible(page: Page, base: str) -> None:
    violations = axe_violations(page, base)
    assert not violations, violations


def test_history_search_rename_open_continue_delete(page: Page, server: RunningServer) -> None:
    open_chat(page, server.url)
    send(page, "first thread")
    page.wait_for_selector(".chat-items >> text=echo: first thread")
    first = page.evaluate("window.triolet.chat.scope")
    history = page.locator("nav.history")
    history.locator(f'li[data-thread="{first}"]').wait_for()

    # Rename in place.
    history.get_by_role("button", name="Rename Untitled").click()
    history.get_by_label("Rename").fill("Tea notes")
    page.keyboard.press("Enter")
    history.get_by_role("button", name="Tea notes", exact=True).wait_for()

    # A second conversation; the sidebar lists both, the current one marked.
    page.get_by_role("button", name="New chat").click()
    page.wait_for_function(
        f"() => window.triolet.chat.scope && window.triolet.chat.scope !== '{first}'"
    )
    send(page, "second thread")
    page.wait_for_selector(".chat-items >> text=echo: second thread")
    page.wait_for_function("() => document.querySelectorAll('nav.history li').length === 2")
    assert history.locator('[aria-current="true"]').inner_text() == "Untitled"

    # Search goes to the server (q=): only the matching thread stays.
    history.get_by_label("Search conversations").fill("first")
    page.wait_for_function("() => document.querySelectorAll('nav.history li').length === 1")
    assert history.locator("li .thread-open").inner_text() == "Tea notes"
    shot(page, "20-history-search")

    # Open the old thread: its stored messages come back, and it continues in a new session.
    history.get_by_role("button", name="Tea notes", exact=True).click()
    page.wait_for_function(
        "want => JSON.stringify([...document.querySelectorAll('article.msg .msg-body')]"
        ".map(b => b.innerText.trim())) === JSON.stringify(want)",
        arg=["Features ready.", "first thread", "echo: first thread", "Welcome back."],
    )
    send(page, "more tea")
    page.wait_for_selector(".chat-items >> text=echo: more tea")
    assert page.evaluate("window.triolet.chat.thread") == first
    assert "second thread" not in " ".join(bodies(page))
    shot(page, "21-history-continued")

    # The continued thread holds the new turn too (the server stored it in the same thread).
    stored = page.evaluate(
        "id => window.triolet.chat.api.json('/api/threads/' + id, {scope: id})", first
    )
    contents = [s["content"] for s in stored["steps"] if s["type"] == "message"]
    assert contents[-2:] == ["more tea", "echo: more tea"]

    # Delete it: gone from the list.
    history.get_by_label("Search conversations").fill("")
    page.wait_for_function("() => document.querySelectorAll('nav.history li').length === 2")
    history.get_by_role("button", name="Delete Tea notes").click()
    page.wait_for_function("() => document.querySelectorAll('nav.history li').length === 1")
    assert_accessible(page, server.url)


def test_feedback_thumbs_and_comment(page: Page, server: RunningServer) -> None:
    open_chat(page, server.url)
    send(page, "rate me")
    reply = page.locator("article.msg-assistant", has_text="echo: rate me")
    reply.get_by_role("button", name="Good answer").click()
    reply.get_by_label("Add a comment (optional)").fill("Clear and <b>short</b>")
    shot(page, "22-feedback-comment")
    reply.get_by_role("button", name="Send feedback").click()
    reply.locator(".feedback-note", has_text="Comment: Clear and <b>short</b>").wait_for()
    assert reply.get_by_role("button", name="Good answer").get_attribute("aria-pressed") == "true"
    # Stored on the server, and shown again when the thread is reopened.
    scope = page.evaluate("window.triolet.chat.scope")
    stored = page.evaluate(
        "id => window.triolet.chat.api.json('/api/threads/' + id, {scope: id})", scope
    )
    assert [(f["score"], f["comment"]) for f in stored["feedback"]] == [
        (1, "Clear and <b>short</b>")
    ]
    page.locator(f'nav.history [data-open="{scope}"]').click()
    again = page.locator("article.msg-assistant", has_text="echo: rate me")
    again.locator(".feedback-note").wait_for()
    assert again.get_by_role("button", name="Good answer").get_attribute("aria-pressed") == "true"
    assert_accessible(page, server.url)


def _file_payload(name: str, mime: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "mimeType": mime, "buffer": data}


def _wait_ready(page: Page, count: int) -> None:
    page.wait_for_function(
        "n => document.querySelectorAll("
        "'.attachments .attachment[data-state=\"done\"]').length === n",
        arg=count,
    )


def test_upload_by_button_drop_and_paste_with_progress(page: Page, server: RunningServer) -> None:
    open_chat(page, server.url)
    # The server's limits are on screen before anything is uploaded.
    limits = page.locator(".upload-limits").inner_text()
    assert "20 MB each" in limits and "PDF" in limits
    # Record every progress value the bars show (an observer: no timing involved).
    page.evaluate(
        """() => { window.__progress = [];
           new MutationObserver(() => document.querySelectorAll('.attachment progress')
             .forEach(p => window.__progress.push(Number(p.value))))
           .observe(document.body, {subtree: true, childList: true, attributes: true,
                                    characterData: true}); }"""
    )
    big = b"x" * (3 * 1024 * 1024)
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Attach files").click()
    chooser.value.set_files(_file_payload("notes.txt", "text/plain", big))
    _wait_ready(page, 1)

    # Drop: a DataTransfer carrying a File, dispatched like the browser does on a real drop.
    page.evaluate(
        """() => {
            const dt = new DataTransfer();
            dt.items.add(new File(['a,b\\n1,2\\n'], 'table.csv', {type: 'text/csv'}));
            const chat = document.querySelector('.triolet-chat');
            for (const type of ['dragenter', 'dragover', 'drop'])
              chat.dispatchEvent(
                new DragEvent(type, {dataTransfer: dt, bubbles: true, cancelable: true}));
        }"""
    )
    # Paste: a clipboard event whose data holds a file (an image pasted from a screenshot).
    page.evaluate(
        """() => {
            const dt = new DataTransfer();
            const png = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
            dt.items.add(new File([png], 'shot.png', {type: 'image/png'}));
            const init = {clipboardData: dt, bubbles: true, cancelable: true};
            document.querySelector('.composer-input')
              .dispatchEvent(new ClipboardEvent('paste', init));
        }"""
    )
    page.wait_for_function(
        "() => document.querySelectorAll('.attachments .attachment').length === 3"
    )
    shot(page, "23-attachments")
    # A file over the limit is refused before upload, with the reason.
    page.evaluate(
        """() => {
            const dt = new DataTransfer();
            dt.items.add(new File(['x'], 'evil.exe', {type: 'application/x-msdownload'}));
            document.querySelector('.triolet-chat').dispatchEvent(
              new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }"""
    )
    page.locator(".toast", has_text="evil.exe: files of type").wait_for()
    send(page, "three files")
    page.wait_for_selector(".chat-items >> text=got 3 file(s)")
    # The frame named the files by id; the hook got each one's name, sniffed type and size
    # from the file store, and a path holding exactly those bytes.
    assert bodies(page)[-1] == (
        "got 3 file(s): notes.txt (text/plain, 3145728 B, on disk); "
        "table.csv (text/csv, 8 B, on disk); shot.png (image/png, 8 B, on disk)"
    )
    assert page.locator(".attachments").is_hidden()
    assert page.locator("article.msg-user .msg-files li").all_inner_texts() == [
        "notes.txt",
        "table.csv",
        "shot.png",
    ]
    progress = page.evaluate("window.__progress")
    # The bars moved from 0 to 1 (intermediate values depend on the machine, so not asserted).
    assert 0 in progress and 1 in progress, progress
    shot(page, "24-uploaded")
    assert_accessible(page, server.url)


def test_file_ask_uses_the_upload_path(page: Page, server: RunningServer) -> None:
    open_chat(page, server.url)
    send(page, "ask file")
    dock = page.locator(".ask-dock")
    dock.get_by_text("Upload the report").first.wait_for()
    dock.get_by_label("Choose a file").set_input_files(
        _file_payload("report.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n")
    )
    dock.locator('.attachment[data-state="done"]').wait_for()
    shot(page, "25-ask-file")
    dock.get_by_role("button", name="Send").click()
    page.wait_for_selector(".chat-items >> text=ask got 1 file(s)")
    # The ask's answer names the file by id too; the hook got its description.
    assert bodies(page)[-1] == "ask got 1 file(s): report.pdf (application/pdf, 15 B, on disk)"


def test_files_of_another_session_stay_bare_ids(browser: Browser, server: RunningServer) -> None:
    # Two visitors: the second names the first one's upload in a message frame of its own.
    contexts = [browser.new_context() for _ in range(2)]
    try:
        owner, other = (context.new_page() for context in contexts)
        for page in (owner, other):
            page.set_default_timeout(BROWSER_TIMEOUT)
            open_chat(page, server.url)
        with owner.expect_file_chooser() as chooser:
            owner.get_by_role("button", name="Attach files").click()
        chooser.value.set_files(_file_payload("secret.txt", "text/plain", b"top secret\n"))
        _wait_ready(owner, 1)
        key = owner.evaluate("window.triolet.chat.attachments.items[0].id")
        other.evaluate(
            "key => window.triolet.chat.connection.send("
            "{type: 'message', content: 'peek', files: [key]})",
            key,
        )
        # The hook saw the id it was sent, and nothing the store knows about that file.
        other.wait_for_selector(f".chat-items >> text=got 1 file(s): {key} (unknown)")
        assert "secret.txt" not in " ".join(bodies(other))
        # Its owner still gets the description.
        send(owner, "mine")
        owner.wait_for_selector(".chat-items >> text=got 1 file(s): secret.txt (text/plain, 11 B")
    finally:
        for context in contexts:
            context.close()


def test_edit_and_resend(page: Page, server: RunningServer) -> None:
    open_chat(page, server.url)
    send(page, "helo")
    page.wait_for_selector(".chat-items >> text=echo: helo")
    mine = page.locator("article.msg-user", has_text="helo")
    mine.get_by_role("button", name="Edit and resend").click()
    editor = mine.get_by_label("Edit and resend", exact=True).last
    editor.fill("hello")
    shot(page, "26-editing")
    page.get_by_role("button", name="Resend").click()
    # Polled on the message list itself (the live region may say it a frame earlier).
    page.wait_for_function(
        "want => JSON.stringify([...document.querySelectorAll('article.msg .msg-body')]"
        ".map(b => b.innerText.trim()).slice(-4)) === JSON.stringify(want)",
        arg=["helo", "echo: helo", "hello", "echo: hello"],
    )
    original = page.locator("article.msg-user").first
    assert "edited" in original.locator(".msg-state").inner_text()
    assert "msg-edited" in (original.get_attribute("class") or "")
    shot(page, "27-resent")


def test_settings_panel(page: Page, server: RunningServer) -> None:
    open_chat(page, server.url)
    page.get_by_role("button", name="Settings").click()
    panel = page.get_by_role("dialog", name="Chat settings")
    assert panel.get_by_label("Model").input_value() == '"small"'
    panel.get_by_label("Model").select_option(label="large")
    panel.get_by_label("Temperature").fill("1.25")
    panel.get_by_label("Verbose").check()
    shot(page, "28-settings")
    assert_accessible(page, server.url)
    panel.get_by_role("button", name="Save").click()
    assert panel.is_hidden()
    want = json.dumps({"model": "large", "temperature": 1.25, "verbose": True}, sort_keys=True)
    page.wait_for_selector(f"text=settings: {want}")


def test_theme_name_and_colours_from_the_config(page: Page, server: RunningServer) -> None:
    # What GET /api/ui answers for a config with [ui] set (the route itself is tested in
    # test_webui_ui_api.py); the page must follow it.
    ui = {
        "name": "Tea Bot",
        "logo_url": "/ui/vendor/none.svg",
        "theme": "dark",
        "language": "fr",
        "colors": {"primary": "#ff8800", "background": "#101820;}body{x:y"},
        "uploads": None,
        "auth": {"login_url": None},
    }
    page.route(
        "**/api/ui",
        lambda route: route.fulfill(content_type="application/json", body=json.dumps(ui)),
    )
    page.goto(server.url)
    page.wait_for_selector(".conn-state >> text=Connecté")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.title() == "Tea Bot"
    assert page.locator(".chat-title").inner_text() == "Tea Bot"
    accent = page.locator(".triolet-chat").evaluate(
        "e => getComputedStyle(e).getPropertyValue('--accent').trim()"
    )
    assert accent == "#ff8800"
    # The bad colour was dropped, not injected.
    background = page.locator(".triolet-chat").evaluate(
        "e => getComputedStyle(e).getPropertyValue('--bg').trim()"
    )
    assert background == "#0d1117"
    assert page.locator("button.attach").is_hidden()  # no uploads on this server
    shot(page, "29-config-theme")


def test_login_screen_when_auth_is_required(page: Page, server: RunningServer) -> None:
    # The server has no auth yet: a stand-in WebSocket refuses hellos without the right token
    # exactly as PROTOCOL.md says (error auth_failed, then closing auth_failed).
    hellos: list[dict[str, Any]] = []

    def handler(ws: Any) -> None:
        def on_message(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") != "hello":
                return
            hellos.append(frame)
            if frame.get("token") != "secret-token":
                ws.send(
                    json.dumps({"type": "error", "code": "auth_failed", "message": "token refused"})
                )
                ws.send(
                    json.dumps(
                        {
                            "type": "closing",
                            "reason": "auth_failed",
                            "code": 4001,
                            "reconnect": False,
                        }
                    )
                )
                ws.close(code=4001)
                return
            ws.send(
                json.dumps(
                    {
                        "type": "welcome",
                        "version": 1,
                        "session": "s_auth",
                        "encoding": "json",
                        "replay": "new",
                        "last_seq": 0,
                        "ack_mode": "received",
                        "user": "ada",
                        "limits": {},
                    }
                )
            )
            ws.send(
                json.dumps(
                    {
                        "type": "message",
                        "seq": 1,
                        "id": "m1",
                        "role": "assistant",
                        "content": "Signed in.",
                    }
                )
            )

        ws.on_message(on_message)

    page.route_web_socket("**/ws", handler)
    page.goto(server.url)
    dialog = page.get_by_role("dialog", name="Sign in")
    dialog.wait_for()
    shot(page, "30-login")
    # The dialog itself (the empty chat behind it is not what this test is about).
    assert not axe_violations(page, server.url, ".login-screen")
    dialog.get_by_label("Access token").fill("secret-token")
    dialog.get_by_role("button", name="Sign in").click()
    page.wait_for_selector(".chat-items >> text=Signed in.")
    assert dialog.is_hidden()
    assert [h.get("token") for h in hellos] == [None, "secret-token"]
