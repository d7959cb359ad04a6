"""What the web UI needs to know before it draws anything: ``GET /api/ui``.

One small public document, the same for every caller (it holds nothing secret, and the page
needs it before anyone has signed in)::

    {"name": "Bot", "logo_url": "/api/ui/logo", "theme": "dark", "language": "fr",
     "colors": {"primary": "#3b82f6"},
     "uploads": {"max_file_bytes": 10485760, "max_session_bytes": ..., "max_files": 32,
                 "allowed_types": ["image/*", "application/pdf"]},
     "auth": {"required": false, "login_url": null}}

- ``name``, ``logo_url``, ``theme``, ``colors``, ``language`` come from the ``[ui]`` section
  (`UISettings.from_config`). A logo given as a file path is served at ``/api/ui/logo``; a URL
  is handed over as it is.
- ``uploads`` are the file store's limits (``[storage]``), so the page can refuse a file that is
  too large or of the wrong type *before* sending it; the server still checks everything.
- ``auth.login_url`` is where the login screen posts its credentials, once the auth issue
  provides such a route; ``null`` until then (the screen then only accepts a token).
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from quart import Response

from ._files_api import DEFAULT_UPLOAD_LIMITS

if TYPE_CHECKING:
    from quart_trio import QuartTrio

    from triolet.storage import FileStore
    from triolet.supervisor.config import TrioletConfig

__all__ = ["LOGO_PATH", "UI_PATH", "UISettings", "register_ui_api", "ui_paths"]

UI_PATH: Final = "/api/ui"
LOGO_PATH: Final = "/api/ui/logo"
#: A logo file larger than this is refused at start rather than served (it is read once).
MAX_LOGO_BYTES: Final = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class UISettings:
    """The ``[ui]`` section as the page sees it."""

    name: str = "Triolet"
    logo: str | None = None
    """An http(s) URL, or a path to a local image file (served at `LOGO_PATH`)."""
    theme: str = "system"
    language: str | None = None
    colors: dict[str, str] = field(default_factory=dict)
    login_url: str | None = None

    @classmethod
    def from_config(cls, config: TrioletConfig, *, base_dir: Path | None = None) -> UISettings:
        """The settings of a validated config; a relative logo path is taken from ``base_dir``."""
        ui = config.ui
        logo = ui.logo
        if logo and not _is_url(logo) and base_dir is not None:
            logo = str((base_dir / logo).resolve())
        colors = {k: v for k, v in ui.colors.model_dump().items() if v is not None}
        return cls(
            name=ui.name or config.app.name,
            logo=logo,
            theme=ui.theme,
            language=ui.language,
            colors=colors,
        )


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://", "data:"))


def register_ui_api(app: QuartTrio, ui: UISettings, *, files: FileStore | None = None) -> None:
    """Add ``GET /api/ui`` (and ``GET /api/ui/logo`` for a local logo file) to ``app``."""
    logo: tuple[bytes, str] | None = None
    logo_url = ui.logo
    if ui.logo and not _is_url(ui.logo):
        path = Path(ui.logo)
        # Read once at start: a missing or huge logo is a config mistake, shown as no logo.
        if path.is_file() and path.stat().st_size <= MAX_LOGO_BYTES:
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            logo = (path.read_bytes(), kind)
            logo_url = LOGO_PATH
        else:
            logo_url = None
    limits = getattr(files, "limits", None)
    document: dict[str, Any] = {
        "name": ui.name,
        "logo_url": logo_url,
        "theme": ui.theme,
        "language": ui.language,
        "colors": dict(ui.colors),
        "uploads": None
        if files is None
        else {
            "max_files": DEFAULT_UPLOAD_LIMITS.max_files,
            "max_file_bytes": getattr(limits, "max_file_bytes", None),
            "max_session_bytes": getattr(limits, "max_session_bytes", None),
            "allowed_types": list(getattr(limits, "allowed_types", ()) or ()),
        },
        "auth": {"login_url": ui.login_url},
    }

    async def ui_document() -> dict[str, Any]:
        return document

    async def ui_logo() -> Response:
        # Always routed (the OpenAPI document lists it); 404 unless the logo is a local file.
        if logo is None:
            return Response(b"", status=404)
        body, kind = logo
        return Response(
            body,
            content_type=kind,
            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
        )

    app.add_url_rule(UI_PATH, f"GET {UI_PATH}", ui_document, methods=["GET"])
    app.add_url_rule(LOGO_PATH, f"GET {LOGO_PATH}", ui_logo, methods=["GET"])


def ui_paths() -> dict[str, Any]:
    """The OpenAPI paths of this module's routes."""
    return {
        UI_PATH: {
            "get": {
                "operationId": "webUiSettings",
                "summary": "The web UI's settings: name, logo, theme, colours, language, "
                "upload limits, login route",
                "responses": {
                    "200": {"description": "JSON", "content": {"application/json": {"schema": {}}}}
                },
            }
        },
        LOGO_PATH: {
            "get": {
                "operationId": "webUiLogo",
                "summary": "The logo file named by [ui] logo (when it is a local file)",
                "responses": {
                    "200": {"description": "the image", "content": {"image/*": {"schema": {}}}},
                    "404": {"description": "no local logo configured"},
                },
            }
        },
    }
