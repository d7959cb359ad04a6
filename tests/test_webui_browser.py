"""The web UI end to end: real ``triolet run`` processes, real headless Chromium.

Each test drives the page the way a user does (type, press Enter, click) and checks what is on
screen; a screenshot of each screen goes to ``test-output/webui/``. Skipped (with the reason)
when Chromium or Playwright is missing; failed instead when ``TRIOLET_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.conftest import BROWSER_TIMEOUT
from tests.webui_harness import (
    EXAMPLES,
    ROOT,
    axe_violations,
    shot,
    triolet_run,
    wait_for_reply,
    widget_on_another_origin,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.chromium


def send(page: Page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.keyboard.press("Enter")


def last_message(page: Page) -> str:
    return str(page.locator("article.msg").last.locator(".msg-body").inner_text())


def assert_accessible(page: Page, base: str) -> None:
    violations = axe_violations(page, base)
    assert not violations, violations


def test_message_streams_and_stop(page: Page) -> None:
    with triolet_run(EXAMPLES / "streaming" / "triolet.toml") as server:
        page.goto(server.url)
        page.wait_for_selector('.conn-state[data-state="connected"]')
        words = " ".join(f"w{i}" for i in range(40))
        send(page, words)
        # While it streams, the message says so and the stop button is offered.
        page.wait_for_selector("article.msg-assistant .msg-state")
        assert page.locator("button.stop").is_visible()
        shot(page, "01-streaming")
        expected = f"You said 40 words: {words}"
        wait_for_reply(page, expected)
        # The finished reply was announced in the live region.
        page.wait_for_function(
            "() => document.querySelector('[aria-live=polite]').textContent.includes('w39')"
        )
        assert page.locator("button.stop").is_hidden()

        send(page, " ".join(["long"] * 300))  # 6 s of tokens
        page.wait_for_selector("button.stop:visible")
        page.click("button.stop")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.msg-body')]"
            ".some(b => b.innerText === '(stopped)')"
        )
        page.wait_for_selector("button.stop", state="hidden")
        shot(page, "02-stopped")
        assert_accessible(page, server.url)


def test_session_resumes_after_the_connection_drops(page: Page) -> None:
    with triolet_run(EXAMPLES / "streaming" / "triolet.toml") as server:
        page.goto(server.url)
        page.wait_for_selector('.conn-state[data-state="connected"]')
        words = " ".join(f"n{i}" for i in range(120))  # about 2.4 s of tokens
        send(page, words)
        page.wait_for_function(
            "() => (document.querySelector('article.msg-assistant .msg-body')?.innerText || '')"
            ".includes('n10')"
        )
        # Cut the socket mid-stream, then the network; tokens keep coming on the server side.
        # In this order: a socket closed while offline may wait for its closing handshake
        # far longer than any test (Chromium), so no close event and no reconnect to see.
        page.evaluate("window.triolet.chat.connection.drop()")
        page.context.set_offline(True)
        # The page may reconnect at once (Chromium's offline mode does not always cover
        # loopback): wait for the state history, not for a state that may already be gone.
        page.wait_for_function(
            "() => window.triolet.chat.states.some(s => s === 'reconnecting' || s === 'offline')"
        )
        shot(page, "03-reconnecting")
        time.sleep(0.8)
        page.context.set_offline(False)
        page.wait_for_selector('.conn-state[data-state="connected"]')
        expected = f"You said 120 words: {words}"
        page.wait_for_function(
            "t => document.querySelector('article.msg-assistant .msg-body').innerText.trim() === t",
            arg=expected,
        )
        # Nothing lost, nothing repeated: one user message, one reply, exactly the words sent.
        assert page.locator("article.msg-user").count() == 1
        assert page.locator("article.msg-assistant").count() == 1
        states = page.evaluate("window.triolet.chat.states")
        assert "reconnecting" in states or "offline" in states, states
        shot(page, "04-resumed")


def test_reload_continues_the_session(page: Page) -> None:
    with triolet_run(EXAMPLES / "echo" / "triolet.toml") as server:
        page.goto(server.url)
        send(page, "one")
        page.wait_for_selector("text=echo: one")
        session = page.evaluate("window.triolet.chat.session")
        page.reload()
        page.wait_for_selector("text=echo: one")  # replayed from the session
        assert page.evaluate("window.triolet.chat.session") == session
        send(page, "two")
        page.wait_for_selector("text=echo: two")
        # Each message exactly once, in order (polled: the last frame may still be rendering).
        page.wait_for_function(
            "want => JSON.stringify([...document.querySelectorAll('article.msg .msg-body')]"
            ".map(b => b.innerText.trim())) === JSON.stringify(want)",
            arg=["Hello! I repeat what you say.", "one", "echo: one", "two", "echo: two"],
        )
        shot(page, "05-reloaded")


def test_steps_tree_and_action(page: Page) -> None:
    with triolet_run(EXAMPLES / "steps_actions" / "triolet.toml") as server:
        page.goto(server.url)
        page.wait_for_selector('.conn-state[data-state="connected"]')
        send(page, "trio")
        page.locator("article.msg-assistant .msg-body", has_text="Two documents mention").wait_for()
        tree = page.locator("details.step-tree").first
        tree.locator("summary").first.click()
        answer = tree.locator("details.step").first
        answer.locator("summary").first.click()
        page.get_by_text("retrieve", exact=True).click()  # opens the nested step
        embed = page.locator("details.step", has_text="embed").last
        assert embed.is_visible()
        assert "fake-embed" in embed.inner_text()
        generate = page.locator("details.step", has_text="generate").last
        summary = generate.locator("summary").first.inner_text()
        assert "fake-llm" in summary and "12 tokens" in summary and "ms" in summary
        # The filter keeps matches and their ancestors, hides the rest.
        tree.get_by_label("Filter steps").fill("embed")
        assert page.locator("li.step-item", has_text="generate").last.is_hidden()
        assert embed.is_visible()
        shot(page, "06-steps")
        tree.get_by_label("Filter steps").fill("")
        # The element came with the answer; the action button answers back.
        assert "doc-1" in page.locator(".el-text pre").inner_text()
        page.get_by_role("button", name="Rate this answer").click()
        page.wait_for_selector("text=Thanks for 5 stars.")
        shot(page, "07-action")
        assert_accessible(page, server.url)


def test_ask_the_user(page: Page) -> None:
    with triolet_run(EXAMPLES / "ask_user" / "triolet.toml") as server:
        page.goto(server.url)
        page.wait_for_selector(".ask-dock >> text=What is your name?")
        assert page.locator("button.send").inner_text() == "Answer"
        shot(page, "08-ask-text")
        send(page, "Ada")
        page.wait_for_selector(".ask-dock >> text=Hello Ada! Tea or coffee?")
        assert_accessible(page, server.url)
        shot(page, "09-ask-action")
        page.locator(".ask-dock").get_by_role("button", name="Coffee").click()
        page.wait_for_selector("text=Ada drinks coffee.")
        assert page.locator(".ask-dock").is_hidden()
        assert page.locator("article.ask-item .msg-state").all_inner_texts() == ["Answered"] * 2


def test_elements_theme_language_and_long_threads(page: Page) -> None:
    with triolet_run(ROOT / "tests" / "webui_showcase.py") as server:
        page.goto(server.url)
        page.wait_for_selector("text=Showcase ready.")
        send(page, "elements")
        page.wait_for_selector("svg.el-chart")
        assert page.locator("img.el-image").count() == 1
        assert page.locator(".el-table td").all_inner_texts() == ["ada", "3", "bob", "5"]
        assert page.locator("svg.el-chart").get_attribute("aria-label") == "Chart: growth. Growth"
        assert (
            page.locator("a.el-file", has_text="data.csv").get_attribute("download") == "data.csv"
        )
        assert page.locator(".code-block code.hljs").count() == 1
        assert page.locator(".code-block button.copy-code").count() == 1
        shot(page, "10-elements")
        assert_accessible(page, server.url)
        page.get_by_role("button", name="Switch between light and dark theme").click()
        assert page.evaluate("document.documentElement.dataset.theme") == "dark"
        shot(page, "11-dark")
        assert_accessible(page, server.url)

        page.goto(server.url + "/?lang=fr")
        page.wait_for_selector("button.send >> text=Envoyer")
        page.wait_for_selector(".conn-state >> text=Connecté")

        # 5,000 messages (as a history load would bring them): rendered within a second, and
        # only the visible few are in the DOM.
        elapsed = page.evaluate(
            """async () => {
                const events = [];
                for (let i = 0; i < 5000; i++) {
                  events.push({type: 'message', id: 'bulk' + i, role: i % 2 ? 'assistant' : 'user',
                               content: `Message **${i}** with some text and \\`code\\`.`});
                }
                const chat = window.triolet.chat;
                const started = performance.now();
                chat.loadEvents(events);
                await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                return performance.now() - started;
            }"""
        )
        print(f"open_5000_msgs_ms={elapsed:.0f}")
        assert elapsed < 1000
        assert page.locator("article").count() < 150
        page.wait_for_selector("text=Message 4999 with some text")
        shot(page, "12-5000-messages")


def test_token_flood_keeps_up(page: Page) -> None:
    with triolet_run(ROOT / "tests" / "webui_showcase.py") as server:
        page.goto(server.url)
        page.wait_for_selector("text=Showcase ready.")
        started = time.monotonic()
        send(page, "flood 20000")
        page.wait_for_function(
            "() => { const m = [...window.triolet.chat.conv.messages.values()]"
            ".find(m => m.author === 'Flood'); return m && !m.streaming; }",
            timeout=60_000,
        )
        elapsed = time.monotonic() - started
        content = page.evaluate(
            "[...window.triolet.chat.conv.messages.values()]"
            ".find(m => m.author === 'Flood').content"
        )
        assert content == "".join(f"t{i} " for i in range(20000))
        page.wait_for_selector("text=t19999")  # and it is on screen
        print(f"stream_20k_tokens_s={elapsed:.2f}")
        shot(page, "13-flood")


def test_payloads_render_as_text(browser: Browser) -> None:
    # CSP off on purpose: the sanitizer alone must hold (the CSP is the second wall).
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT)
    dialogs: list[Any] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        with triolet_run(ROOT / "tests" / "webui_showcase.py") as server:
            page.goto(server.url)
            page.wait_for_selector("text=Showcase ready.")
            send(
                page, "<script>window.__xss='user'</script><img src=x onerror=\"window.__xss='u'\">"
            )
            send(page, "xss")
            page.wait_for_selector("text=model says:")
            page.locator("details.step-tree summary").first.click()
            page.locator("details.step summary").first.click()
            page.wait_for_timeout(300)  # give any injected handler the chance to fire
            assert page.evaluate("window.__xss") is None
            assert not dialogs
            # No element from a payload made it into the DOM, and the text is visible as text.
            assert (
                page.locator(
                    ".chat-items script, .chat-items iframe, .chat-items svg[onload]"
                ).count()
                == 0
            )
            assert page.locator(".chat-items [onerror], .chat-items [onload]").count() == 0
            assert page.locator(".chat-items a[href^='javascript']").count() == 0
            step_output = page.locator(".step-io pre").last.inner_text()
            assert "<script>window.__xss = 'script'</script>" in step_output
            assert "notes <img src=x" in page.locator(".el-text figcaption").inner_text()
            file_link = page.locator("a.el-file", has_text="report")
            assert "<script>" in file_link.inner_text()
            assert "tool <img src=x" in page.locator("details.step summary").first.inner_text()
            shot(page, "14-xss")
    finally:
        context.close()


def test_copilot_widget_from_another_origin(browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1000, "height": 760})
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        with widget_on_another_origin() as (url, server):
            page.goto(url)
            launcher = page.locator("[data-triolet-widget] button.launcher")
            launcher.click()
            panel = page.locator("[data-triolet-widget] .panel")
            panel.locator(".msg-body", has_text="Hello! I repeat what you say.").wait_for()
            assert launcher.get_attribute("aria-expanded") == "true"
            panel.get_by_label("Message", exact=True).fill("from the widget")
            page.keyboard.press("Enter")
            panel.locator(".msg-body", has_text="echo: from the widget").wait_for()
            # The host page's CSS does not reach into the shadow root.
            colour = panel.locator("button.send").evaluate(
                "b => getComputedStyle(b).backgroundColor"
            )
            assert colour != "rgb(255, 0, 0)"
            shot(page, "15-widget")
            assert_accessible(page, server.url)
            page.keyboard.press("Escape")
            assert panel.is_hidden()
        assert not errors, errors
    finally:
        context.close()
