"""Real ``triolet run`` processes and a real headless Chromium for the web UI tests.

Playwright's sync API drives Debian's Chromium (``/usr/bin/chromium``; never ``playwright
install``). The tests are plain ``def`` functions, so no Trio loop runs in their thread and
the sync API is free to run its own. Screenshots go to ``test-output/webui/``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SHOTS = ROOT / "test-output" / "webui"
CHROMIUM = "/usr/bin/chromium"
#: Root in a container, with the network closed: no sandbox, no background services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVING = re.compile(rb"serving on (http://\S+)")
AXE = "/ui/vendor/axe-core/axe.min.js"


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return f"{CHROMIUM} is missing (apt-get update && apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[dev]')"
    return None


class RunningServer:
    """A ``triolet run`` child; its output is drained by a thread (and shown on failure)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.output = bytearray()
        self.url = ""
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        while chunk := self.process.stdout.read1(65536):
            self.output += chunk
            if not self.url and (match := SERVING.search(self.output)):
                self.url = match.group(1).decode()
                self._ready.set()
        self._ready.set()

    def wait_ready(self) -> str:
        self._ready.wait(30)
        if not self.url:
            raise AssertionError(
                f"triolet run did not start:\n{self.output.decode(errors='replace')}"
            )
        return self.url

    def stop(self) -> None:
        # Its state is thrown away and a clean stop is test_cli_run's subject: after a short
        # grace the process is killed (a stop after sessions were opened takes ~5 s today).
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(1.5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def triolet_run(
    target: Path, *, allowed_origins: list[str] | None = None
) -> Iterator[RunningServer]:
    """Run ``target`` (a triolet.toml or an app .py) from a private copy of its folder.

    A copy, because the server keeps its state (journal, database) next to the config: two
    runs of one example at once (another test file, a developer) must not share it.
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if allowed_origins is not None:
        env["TRIOLET__SERVER__ALLOWED_ORIGINS"] = json.dumps(allowed_origins)
    with tempfile.TemporaryDirectory(prefix="triolet-webui-") as tmp:
        names = ["app.py", "triolet.toml"] if target.suffix == ".toml" else [target.name]
        for name in names:
            shutil.copy2(target.parent / name, Path(tmp) / name)
        with _run(Path(tmp) / target.name, env) as server:
            yield server


@contextlib.contextmanager
def _run(target: Path, env: dict[str, str]) -> Iterator[RunningServer]:
    process = subprocess.Popen(
        [sys.executable, "-m", "triolet", "run", str(target), "--port", "0", "--host", "127.0.0.1"],
        cwd=target.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    server = RunningServer(process)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


#: A page of another site that embeds the copilot widget (its own styles must not leak in).
WIDGET_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Another site</title>
<style>button {{ background: red !important; }}</style></head>
<body><main><h1>A page on another origin</h1><p>It embeds the copilot.</p></main>
<script src="{server}/ui/widget.js" data-title="Copilot" defer></script>
</body></html>
"""


def wait_for_reply(page: Page, text: str) -> None:
    """Wait until an assistant message on the page reads exactly ``text``."""
    page.wait_for_function(
        "t => [...document.querySelectorAll('article.msg-assistant .msg-body')]"
        ".some(b => b.innerText.trim() === t)",
        arg=text,
    )


@contextlib.contextmanager
def widget_on_another_origin() -> Iterator[tuple[str, RunningServer]]:
    """The echo example, allowed from a second origin whose page embeds the widget; yields
    that page's URL and the server."""
    with (
        static_site("") as site,
        triolet_run(EXAMPLES / "echo" / "triolet.toml", allowed_origins=[site]) as server,
    ):
        (ROOT / "test-output" / "site" / "index.html").write_text(
            WIDGET_PAGE.format(server=server.url), encoding="utf-8"
        )
        yield site + "/index.html", server


@contextlib.contextmanager
def static_site(html: str) -> Iterator[str]:
    """A second origin: a tiny HTTP server on another port that serves one page."""
    folder = SHOTS.parent / "site"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text(html, encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def launch(playwright: Any) -> Browser:
    browser: Browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    return browser


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def axe_violations(page: Page, base: str, selector: str | None = None) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on the page, or in the element ``selector``
    names (axe loaded from the server)."""
    page.add_script_tag(url=base + AXE)
    result: list[dict[str, Any]] = page.evaluate(
        """async (selector) => {
            const scope = selector ? document.querySelector(selector) : document;
            const r = await axe.run(scope, {resultTypes: ['violations']});
            return r.violations
              .filter(v => v.impact === 'serious' || v.impact === 'critical')
              .map(v => ({id: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }""",
        selector,
    )
    return result


#: The focused element, through shadow roots (the widget's controls live in one).
_FOCUSED = """() => {
    let el = document.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    return el;
}"""

#: What a control is called in a report, and (with its rank among controls called the same
#: in its root) how it is known again after a re-render: a history refresh that lands while
#: the walk goes on replaces the sidebar's buttons, and the fresh ones carry no mark.
_CONTROL_KEY = """(el) => {
    const name = (el) => `${el.tagName.toLowerCase()}.${el.className} "${
        el.getAttribute('aria-label') || el.textContent.trim().slice(0, 40)}"`;
    const base = name(el);
    const same = Array.from(el.getRootNode().querySelectorAll(el.tagName))
        .filter(other => name(other) === base);
    return [base, `${base} #${same.indexOf(el)}`];
}"""

#: Marks the focused element as reached; true when it had been reached before.
_MARK_FOCUSED = (
    "() => { const el = (" + _FOCUSED + ")(); if (!el || el === document.body) return false;"
    " const again = el.dataset.kbReached === '1'; el.dataset.kbReached = '1';"
    " (window.__kbReached = window.__kbReached || new Set()).add((" + _CONTROL_KEY + ")(el)[1]);"
    " return again; }"
)

#: Every control a user could operate that the walk did not reach (visible ones only).
_UNREACHED = (
    """() => {
    const key = """
    + _CONTROL_KEY
    + """;
    const reached = window.__kbReached || new Set();
    const roots = [document];
    for (const el of document.querySelectorAll('*')) if (el.shadowRoot) roots.push(el.shadowRoot);
    const out = [];
    for (const root of roots) {
      for (const el of root.querySelectorAll(
          'button, a[href], input, select, textarea, summary, [tabindex], '
          + '[role=button], [role=link], [role=checkbox], [role=tab], [role=menuitem]')) {
        if (el.disabled || el.getAttribute('tabindex') === '-1') continue;
        if (el.closest('[inert], [aria-hidden="true"]') || !el.getClientRects().length) continue;
        if (getComputedStyle(el).visibility === 'hidden') continue;
        const [name, known] = key(el);
        if (el.dataset.kbReached !== '1' && !reached.has(known)) out.push(name);
      }
    }
    return out;
}"""
)


def keyboard_unreached(page: Page, max_presses: int = 300) -> list[str]:
    """Walk the page with Tab until focus comes round again; return every visible control
    (button, link, field, summary, focusable region, or an element with a control's role)
    that focus never reached.

    Waits for the network to settle first, and knows controls again by name and rank: a
    history refresh (the page asks for one after every ack) that lands mid-walk re-renders the
    sidebar, and its fresh buttons would carry no mark of having been reached."""
    page.wait_for_load_state("networkidle")
    page.evaluate(
        "document.querySelectorAll('[data-kb-reached]').forEach(el => delete el.dataset.kbReached);"
        " window.__kbReached = new Set();"
    )
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); }")
    for _ in range(max_presses):
        page.keyboard.press("Tab")
        if page.evaluate(_MARK_FOCUSED):
            break
    else:
        raise AssertionError(f"focus did not come round in {max_presses} presses of Tab")
    unreached: list[str] = page.evaluate(_UNREACHED)
    return unreached


def focused(page: Page, script: str) -> Any:
    """Evaluate ``script`` (a function of the focused element, through shadow roots)."""
    return page.evaluate(f"() => ({script})(({_FOCUSED})())")
