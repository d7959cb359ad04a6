"""The web UI's files: what is served, with which headers, and what never is (no browser)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.http_harness import running_server
from triolet.webui import find_asset
from triolet.webui._assets import ROOT

WEBUI = Path(__file__).resolve().parent.parent / "webui"


@pytest.mark.parametrize(
    "path",
    [
        "../pyproject.toml",
        "app/../../pyproject.toml",
        "app/../_assets.py",
        "_assets.py",
        "__init__.py",
        "vendor.py",
        "package.json",
        "app//chat.js",
        "app/./chat.js",
        ".hidden",
        "app\\chat.js",
        "app/chat.js\0.css",
        "/etc/passwd",
        "",
        "app",
        "vendor/marked/LICENSE",  # no extension: not a type we serve
    ],
)
def test_only_public_files_are_found(path: str) -> None:
    assert find_asset(path) is None


def test_symlinks_out_of_the_package_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.js"
    secret.write_text("secret")
    link = ROOT / "app" / "zz_test_link.js"
    link.symlink_to(secret)
    try:
        assert find_asset("app/zz_test_link.js") is None
    finally:
        link.unlink()


def test_files_have_types_and_cache_rules() -> None:
    page = find_asset("index.html")
    module = find_asset("app/chat.js")
    vendored = find_asset("vendor/marked/marked.esm.js")
    assert page and module and vendored
    assert page.content_type.startswith("text/html")
    assert module.content_type.startswith("text/javascript")
    assert (module.cache_control, vendored.cache_control) == ("no-cache", "public, max-age=3600")
    assert module.etag != vendored.etag


def test_every_module_import_resolves_to_a_served_file() -> None:
    # No build step means a typo in an import path is only found by a browser; find it here.
    pattern = re.compile(r"""(?:import|from)\s*\(?\s*["'](\.{1,2}/[^"'$`]+)["']""")
    for file in [*WEBUI.glob("app/*.js"), *WEBUI.glob("locales/*.js")]:
        for target in pattern.findall(file.read_text(encoding="utf-8")):
            resolved = (file.parent / target).resolve().relative_to(WEBUI.resolve())
            assert find_asset(resolved.as_posix()) is not None, f"{file.name} imports {target}"


def test_locales_have_every_english_key() -> None:
    def keys(name: str) -> set[str]:
        text = (WEBUI / "locales" / name).read_text(encoding="utf-8")
        return set(re.findall(r'^\s*"([\w.]+)":', text, re.MULTILINE))

    english = keys("en.js")
    assert len(english) > 40
    assert keys("fr.js") == english


def test_vendor_folder_matches_the_lockfile() -> None:
    lock = json.loads((WEBUI / "package-lock.json").read_text(encoding="utf-8"))
    versions = (WEBUI / "vendor" / "VERSIONS.txt").read_text(encoding="utf-8")
    for name in ("marked", "dompurify", "@highlightjs/cdn-assets", "axe-core"):
        assert f"{name} {lock['packages'][f'node_modules/{name}']['version']} " in versions
    for folder in ("marked", "dompurify", "highlight", "axe-core"):
        assert (WEBUI / "vendor" / folder / "LICENSE").is_file()


async def test_the_server_serves_the_ui_with_its_headers() -> None:
    async with running_server() as h:
        page = await h.client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
        assert 'src="ui/app/main.js"' in page.text

        module = await h.client.get("/ui/app/chat.js")
        assert module.status_code == 200
        assert module.headers["content-type"] == "text/javascript; charset=utf-8"
        assert module.headers["x-content-type-options"] == "nosniff"
        assert module.headers["access-control-allow-origin"] == "*"
        again = await h.client.get(
            "/ui/app/chat.js", headers={"If-None-Match": module.headers["etag"]}
        )
        assert (again.status_code, again.content) == (304, b"")

        for bad in (
            "/ui/../pyproject.toml",
            "/ui/vendor.py",
            "/ui/%2e%2e/setup.py",
            "/ui/app/nope.js",
        ):
            response = await h.client.get(bad)
            assert response.status_code == 404, bad
            assert response.headers["content-type"] == "application/problem+json"


async def test_headless_serves_no_ui() -> None:
    async with running_server(headless=True) as h:
        assert (await h.client.get("/")).status_code == 404
        assert (await h.client.get("/ui/app/chat.js")).status_code == 404
