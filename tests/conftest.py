"""Shared test configuration.

Tests that need a service (PostgreSQL, Chromium, ...) call `require_service`:
on a developer machine without it they skip with a visible reason; in CI,
where ``TRIOLET_REQUIRE_SERVICES=1``, a missing service fails the run instead
of silently skipping.
"""

from __future__ import annotations

import logging
import os

import pytest


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
