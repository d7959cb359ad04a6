"""The web UI with a keyboard and a screen reader: real ``triolet run``, real headless Chromium.

- **Keyboard**: on each screen (chat with history, feedback and settings; step tree and
  actions; asks; elements and the side panel; the copilot widget) a walk with Tab reaches every
  visible control (`keyboard_unreached`), and the controls are then worked with keys only
  (Enter, Space, Escape, typing), checking where focus goes.
- **Live region**: replies, streamed or not, are announced through the polite live region once
  complete (never token by token), and what a reload replays is shown without being read out.

axe-core's serious/critical checks run in ``test_webui_browser.py`` and ``test_webui_features.py``
on the same screens. Screenshots go to ``test-output/webui/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.webui_harness import (
    EXAMPLES,
    ROOT,
    focused,
    keyboard_unreached,
    shot,
    triolet_run,
    wait_for_reply,
    widget_on_another_origin,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.chromium

LIVE = "[aria-live=polite]"


def type_message(page: Page, text: str) -> None:
    """Focus the composer, type and press Enter: no pointer involved."""
    page.get_by_label("Message", exact=True).focus()
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def focus_label(page: Page) -> str:
    label: str = focused(
        page,
        "el => el ? (el.getAttribute('aria-label') || el.textContent.trim() || el.tagName) : ''",
    )
    return label


def test_chat_history_feedback_edit_settings_by_keyboard(page: Page) -> None:
    with triolet_run(ROOT / "tests" / "webui_features.py") as server:
        page.goto(server.url)
        page.wait_for_selector(".chat-items >> text=Features ready.")
        type_message(page, "rate me")
        reply = page.locator("article.msg-assistant", has_text="echo: rate me")
        reply.wait_for()
        page.locator("nav.history li[data-thread]").first.wait_for()
        assert keyboard_unreached(page) == []

        # Feedback: Enter on the thumb opens the comment box and moves focus into it.
        reply.get_by_role("button", name="Good answer").focus()
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.activeElement.matches('[data-feedback-comment]')")
        page.keyboard.type("clear")
        page.keyboard.press("Tab")
        assert focus_label(page) == "Send feedback"
        page.keyboard.press("Enter")
        reply.locator(".feedback-note", has_text="clear").wait_for()
        assert (
            reply.get_by_role("button", name="Good answer").get_attribute("aria-pressed") == "true"
        )

        # Edit and resend: Enter opens the editor with focus in it; Enter resends.
        page.locator("article.msg-user", has_text="rate me").get_by_role(
            "button", name="Edit and resend"
        ).focus()
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.activeElement.matches('textarea.edit-box')")
        page.keyboard.press("End")
        page.keyboard.type(" again")
        page.keyboard.press("Enter")
        page.wait_for_selector(".chat-items >> text=echo: rate me again")

        # Settings: a dialog that takes focus, closes on Escape and gives focus back.
        page.get_by_role("button", name="Settings").focus()
        page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="Chat settings")
        dialog.wait_for()
        assert focused(page, "el => !!el.closest('[role=dialog]')")
        assert keyboard_unreached(page) == []  # the dialog's own fields and buttons too
        shot(page, "40-keyboard-settings")
        page.keyboard.press("Escape")
        assert dialog.is_hidden()
        assert focus_label(page) == "Settings"

        # History: rename in place with Enter, from the keyboard.
        page.get_by_role("button", name="Rename Untitled").focus()
        # A background refresh (every ack asks for one) draws the list again: the keyboard
        # user's focus stays on the same button of the same thread.
        page.evaluate("window.triolet.history.refresh()")
        assert focus_label(page) == "Rename Untitled"
        page.keyboard.press("Enter")
        page.wait_for_function("() => document.activeElement.matches('[data-rename-input]')")
        page.keyboard.press("Control+A")
        page.keyboard.type("Keyboard")
        # A background refresh (every ack asks for one) lands mid-rename: the form, what was
        # typed and the focus survive it.
        page.evaluate("window.triolet.history.refresh()")
        assert focused(page, "el => el.matches('[data-rename-input]')")
        page.keyboard.type(" only")
        page.keyboard.press("Enter")
        page.get_by_role("button", name="Keyboard only", exact=True).wait_for()


def test_step_tree_and_action_by_keyboard(page: Page) -> None:
    with triolet_run(EXAMPLES / "steps_actions" / "triolet.toml") as server:
        page.goto(server.url)
        page.wait_for_selector('.conn-state[data-state="connected"]')
        type_message(page, "trio")
        page.locator("article.msg-assistant .msg-body", has_text="Two documents mention").wait_for()
        # Open every level of the tree with Enter on its summary (a closed one hides its children).
        for _ in range(20):
            closed = page.locator("details:not([open]) > summary:visible")
            if not closed.count():
                break
            closed.first.focus()
            page.keyboard.press("Enter")
        assert page.locator("details:not([open])").count() == 0
        assert page.locator("details.step", has_text="embed").last.is_visible()
        assert keyboard_unreached(page) == []
        # The filter is a field like any other: type into it.
        page.get_by_label("Filter steps").first.focus()
        page.keyboard.type("embed")
        assert page.locator("li.step-item", has_text="generate").last.is_hidden()
        shot(page, "41-keyboard-steps")
        page.keyboard.press("Control+A")
        page.keyboard.press("Backspace")
        # The action button answers Space.
        page.get_by_role("button", name="Rate this answer").focus()
        page.keyboard.press("Space")
        page.wait_for_selector("text=Thanks for 5 stars.")


def test_asks_by_keyboard(page: Page) -> None:
    with triolet_run(EXAMPLES / "ask_user" / "triolet.toml") as server:
        page.goto(server.url)
        page.wait_for_selector(".ask-dock >> text=What is your name?")
        # The text ask takes the composer; typing goes there with no click.
        assert focused(page, "el => el.matches('.composer-input')")
        page.keyboard.type("Ada")
        page.keyboard.press("Enter")
        page.wait_for_selector(".ask-dock >> text=Hello Ada! Tea or coffee?")
        # The choice ask moves focus to its first button; Tab reaches the next one.
        page.wait_for_function("() => document.activeElement.textContent === 'Tea'")
        assert keyboard_unreached(page) == []
        page.get_by_role("button", name="Tea").focus()
        page.keyboard.press("Tab")
        assert focus_label(page) == "Coffee"
        page.keyboard.press("Enter")
        page.wait_for_selector("text=Ada drinks coffee.")
        assert page.locator(".ask-dock").is_hidden()


def test_elements_and_side_panel_by_keyboard(page: Page) -> None:
    with triolet_run(ROOT / "tests" / "webui_showcase.py") as server:
        page.goto(server.url)
        page.wait_for_selector("text=Showcase ready.")
        type_message(page, "elements")
        page.wait_for_selector("svg.el-chart")
        assert keyboard_unreached(page) == []  # the copy button, the table region, the file link
        page.get_by_role("button", name="Copy").focus()
        page.keyboard.press("Enter")
        page.get_by_role("button", name="Copied").wait_for()

        type_message(page, "side")
        chip = page.locator("button[data-side]")
        chip.focus()
        page.keyboard.press("Enter")
        side = page.locator("aside.side-panel")
        side.get_by_text("side one").wait_for()
        assert focused(page, "el => el.matches('.side-close')")
        assert keyboard_unreached(page) == []
        shot(page, "42-keyboard-side-panel")
        page.keyboard.press("Escape")
        assert side.is_hidden()
        assert focused(page, "el => el.matches('.composer-input')")


def test_copilot_widget_by_keyboard(page: Page) -> None:
    with widget_on_another_origin() as (url, _server):
        page.goto(url)
        page.locator("[data-triolet-widget] button.launcher").wait_for()
        # The launcher is the page's first stop for Tab; Enter opens the panel with focus in
        # the composer.
        page.keyboard.press("Tab")
        assert focused(page, "el => el.matches('button.launcher')")
        page.keyboard.press("Enter")
        panel = page.locator("[data-triolet-widget] .panel")
        panel.locator(".msg-body", has_text="Hello! I repeat what you say.").wait_for()
        page.wait_for_function(
            "() => document.querySelector('[data-triolet-widget]').shadowRoot"
            ".activeElement?.matches('.composer-input')"
        )
        page.keyboard.type("typed")
        page.keyboard.press("Enter")
        panel.locator(".msg-body", has_text="echo: typed").wait_for()
        assert keyboard_unreached(page) == []
        # Escape closes it and gives focus back to the launcher.
        page.get_by_label("Message", exact=True).focus()
        page.keyboard.press("Escape")
        assert panel.is_hidden()
        assert focused(page, "el => el.matches('button.launcher')")


def test_replies_are_announced_once_complete(page: Page) -> None:
    with triolet_run(EXAMPLES / "streaming" / "triolet.toml") as server:
        page.goto(server.url)
        page.wait_for_selector('.conn-state[data-state="connected"]')
        live = page.locator(LIVE)
        assert live.get_attribute("aria-atomic") == "true"
        # Record every text the live region ever holds (an observer: no timing involved).
        page.evaluate(
            """(selector) => { window.__said = [];
               const region = document.querySelector(selector);
               new MutationObserver(() => window.__said.push(region.textContent))
                 .observe(region, {childList: true, characterData: true, subtree: true}); }""",
            LIVE,
        )
        words = " ".join(f"w{i}" for i in range(40))
        type_message(page, words)
        # While it streams the feed says it is busy; the region says nothing of the reply yet.
        page.wait_for_selector("article.msg-assistant .msg-state")
        assert page.locator(".chat-items").get_attribute("aria-busy") == "true"
        expected = f"You said 40 words: {words}"
        wait_for_reply(page, expected)
        page.wait_for_function(
            "t => document.querySelector('[aria-live=polite]').textContent.endsWith(t)",
            arg=expected,
        )
        assert page.locator(".chat-items").get_attribute("aria-busy") == "false"
        said: list[str] = page.evaluate("window.__said.filter(s => s)")
        # Announced once, whole: never a partial reply, token by token.
        assert [s for s in said if "You said" in s] == [f"FakeLLM: {expected}"]

        # A reload replays the conversation on screen without reading it out again.
        page.reload()
        wait_for_reply(page, expected)
        page.wait_for_selector('.conn-state[data-state="connected"]')
        assert page.locator(LIVE).text_content() == ""


def test_a_huge_streamed_reply_is_announced_in_brief(page: Page) -> None:
    with triolet_run(ROOT / "tests" / "webui_showcase.py") as server:
        page.goto(server.url)
        page.wait_for_selector("text=Showcase ready.")
        type_message(page, "flood 5000")
        page.wait_for_function(
            "() => document.querySelector('[aria-live=polite]').textContent.startsWith('Flood:')"
        )
        said = page.locator(LIVE).text_content() or ""
        assert said.startswith("Flood: t0 t1 t2")
        assert len(said) <= len("Flood: ") + 600  # its start, not 30 KB read aloud
        # ...while the message itself shows all of it.
        page.wait_for_selector("text=t4999")
