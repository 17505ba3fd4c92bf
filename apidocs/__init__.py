"""The /docs page of both apps, with Swagger UI served from this package instead of a CDN.

FastAPI's own /docs and /redoc pages load their scripts and styles from cdn.jsdelivr.net, so on
an offline machine or in a locked-down cluster they are blank. An app built with
``docs_url=None, redoc_url=None`` calls ``serve_docs(app)`` and gets /docs back, every asset
under /docs/assets/ from the same origin. ReDoc is not offered: one docs page is enough, and its
bundle would double what this package carries.

static/ holds files of the npm package swagger-ui-dist, unmodified (``npm pack
swagger-ui-dist@5.35.0``): swagger-ui-bundle.js, swagger-ui.css, favicon-32x32.png, and the
licence texts (Apache-2.0: LICENSE and NOTICE; the bundled libraries' notices in
swagger-ui-bundle.js.LICENSE.txt, which the bundle's first line points to). To update, unpack
a newer version over these files and change SWAGGER_UI_VERSION.

Its own package because both apps need it and neither may import the other.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER_UI_VERSION = "5.35.0"
STATIC_DIR = Path(__file__).parent / "static"
DOCS_PATH = "/docs"
ASSETS_PATH = f"{DOCS_PATH}/assets"

# No online validator badge: it would fetch an image from validator.swagger.io.
UI_PARAMETERS = {"validatorUrl": None}


def serve_docs(app: FastAPI) -> None:
    """Add GET /docs (Swagger UI for the app's OpenAPI) and the assets it loads."""
    if app.docs_url or app.redoc_url:
        raise ValueError("build the app with docs_url=None, redoc_url=None: those pages use a CDN")
    if app.openapi_url is None:
        raise ValueError("serve_docs needs the app's openapi_url")
    openapi_url = app.openapi_url
    app.mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        # Behind a proxy that strips a prefix, every URL the page loads keeps that prefix.
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            swagger_ui_parameters={**UI_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )
