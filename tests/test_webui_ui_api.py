"""GET /api/ui: the [ui] settings and upload limits the web UI starts from."""

from __future__ import annotations

from pathlib import Path

import trio

from triolet.storage import FileLimits, LocalFileStore
from triolet.supervisor.config import load_config
from triolet.supervisor.router import Router
from triolet.transport._http import create_http_app
from triolet.transport._ui_api import UISettings


def _router() -> Router:
    from triolet import SessionActor

    class Quiet(SessionActor):
        pass

    return Router(Quiet)


def test_ui_document_from_settings_and_file_limits(tmp_path: Path) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>", encoding="utf-8")
    files = LocalFileStore(str(tmp_path / "files"), FileLimits(max_file_bytes=1024))
    ui = UISettings(
        name="Tea", logo=str(logo), theme="dark", language="fr", colors={"primary": "#ff8800"}
    )
    app = create_http_app(_router(), files=files, ui=ui)

    async def main() -> None:
        client = app.test_client()
        doc = await (await client.get("/api/ui")).get_json()
        assert doc["name"] == "Tea" and doc["theme"] == "dark" and doc["language"] == "fr"
        assert doc["colors"] == {"primary": "#ff8800"}
        assert doc["logo_url"] == "/api/ui/logo"
        assert doc["uploads"]["max_file_bytes"] == 1024 and doc["uploads"]["max_files"] == 32
        assert doc["auth"] == {"login_url": None}
        response = await client.get("/api/ui/logo")
        assert response.status_code == 200 and response.content_type == "image/svg+xml"

    trio.run(main)


def test_defaults_headless_and_config(tmp_path: Path) -> None:
    async def main() -> None:
        doc = await (
            await create_http_app(_router(), title="bot").test_client().get("/api/ui")
        ).get_json()
        assert doc["name"] == "bot" and doc["uploads"] is None and doc["logo_url"] is None
        headless = create_http_app(_router(), headless=True).test_client()
        assert (await headless.get("/api/ui")).status_code == 404

    trio.run(main)
    (tmp_path / "triolet.toml").write_text(
        '[app]\nactor = "a.py"\nname = "bot"\n[ui]\ntheme = "light"\nlogo = "https://x.test/l.png"\n'
        '[ui.colors]\nprimary = "#123456"\n',
        encoding="utf-8",
    )
    settings = UISettings.from_config(load_config(tmp_path / "triolet.toml"), base_dir=tmp_path)
    assert settings == UISettings(
        name="bot",
        logo="https://x.test/l.png",
        theme="light",
        language=settings.language,
        colors={"primary": "#123456"},
    )
