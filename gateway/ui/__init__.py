"""GET /ui: the status page, static files served by the gateway itself (no build step, no CDN).

static/ holds the whole page: index.html, ui.js (it fetches /routing, /stats and /shadow every
second and draws them), ui.css. The page only reads: nothing on it can change routing. Its
URLs are relative (``ui/assets/ui.js``, ``routing``), so it also works behind a proxy that serves
the gateway under a path prefix.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
UI_PATH = "/ui"
ASSETS_PATH = f"{UI_PATH}/assets"


def serve_ui(app: FastAPI) -> None:
    """Add GET /ui (the page) and the files it loads under /ui/assets/."""
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR), name="ui-assets")

    @app.get(UI_PATH, include_in_schema=False)
    async def status_page() -> FileResponse:
        # no-cache: a gateway upgrade shows its own page, not the browser's old copy
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})
