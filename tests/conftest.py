"""Shared test configuration.

Tests that need a service (PostgreSQL, Chromium, ...) call `require_service`:
on a developer machine without it they skip with a visible reason; in CI,
where ``TRIOLET_REQUIRE_SERVICES=1``, a missing service fails the run instead
of silently skipping.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

#: ms: a safety net for a broken browser run, not a timing assertion.
BROWSER_TIMEOUT = 30_000


def require_service(available: bool, reason: str) -> None:
    """Skip (or, in CI, fail) the calling test when a service is missing."""
    if available:
        return
    if os.environ.get("TRIOLET_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required service missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _quiet_expected_crash_logs(caplog: pytest.LogCaptureFixture) -> None:
    # Supervision tests crash actors on purpose; keep their tracebacks in the
    # captured log (where tests can assert on them) rather than on stderr.
    caplog.set_level(logging.INFO, logger="triolet")


# --- the browser tests' Chromium (tests/test_webui_*.py ask for ``page``) ----------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for one test module (skipped, or failed in CI, when missing)."""
    from tests.webui_harness import browser_missing, launch

    missing = browser_missing()
    require_service(missing is None, missing or "")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context and page; any script error on it fails the test. Dialogs
    (``confirm`` before a delete) are accepted."""
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()
    assert not errors, errors
