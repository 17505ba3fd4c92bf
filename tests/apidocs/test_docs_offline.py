"""/docs of both apps works with no internet: every URL the page loads is served by the app."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from apidocs import STATIC_DIR, SWAGGER_UI_VERSION, serve_docs
from gateway.app import create_app as create_gateway
from model_server.app import create_app as create_model_server
from model_server.settings import ModelSettings
from tests.gateway.fakes import settings_for, write_routing

ROOT = Path(__file__).resolve().parents[2]
# Where the page says to fetch something: src=, href= and Swagger UI's url: '...'.
REFERENCE = re.compile(r"""(?:src|href)="([^"]+)"|\burl:\s*'([^']+)'""")
# What each asset must be served as, and a size below which it is not the real file.
EXPECTED = {
    ".js": ({"text/javascript", "application/javascript"}, 500_000),
    ".css": ({"text/css"}, 50_000),
    ".png": ({"image/png"}, 100),
}


@pytest.fixture(params=["gateway", "model_server"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> FastAPI:
    """Each app as its factory builds it (no lifespan: the docs need no replica or model)."""
    if request.param == "gateway":
        return create_gateway(settings_for(write_routing(tmp_path / "routing.yaml")))
    artifacts: Path = request.getfixturevalue("artifacts_dir")
    version = "v2.3.1"
    return create_model_server(
        ModelSettings(version=version, path=artifacts / version / "model.joblib")
    )


def references(html: str) -> list[str]:
    found = [a or b for a, b in REFERENCE.findall(html)]
    assert found, "the page references nothing: not the Swagger UI page"
    return found


def test_docs_page_references_only_its_own_origin(app: FastAPI) -> None:
    page = TestClient(app).get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for url in references(page.text):
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"/docs loads {url} from another host"
        assert url.startswith("/"), url


def test_every_asset_the_page_loads_is_served(app: FastAPI) -> None:
    client = TestClient(app)
    urls = references(client.get("/docs").text)
    assets = [u for u in urls if Path(urlsplit(u).path).suffix in EXPECTED]
    assert {Path(u).suffix for u in assets} == set(EXPECTED), urls  # script, style and icon
    for url in assets:
        answer = client.get(url)
        assert answer.status_code == 200, url
        types, least = EXPECTED[Path(url).suffix]
        assert answer.headers["content-type"].split(";")[0] in types, (url, answer.headers)
        assert len(answer.content) >= least, f"{url}: {len(answer.content)} bytes"
    schema = [u for u in urls if u.endswith("openapi.json")]
    assert schema and client.get(schema[0]).json()["paths"]


def test_no_page_that_needs_a_cdn_is_left(app: FastAPI) -> None:
    client = TestClient(app)
    assert client.get("/redoc").status_code == 404
    assert "cdn." not in client.get("/docs").text


def test_urls_keep_the_root_path_behind_a_prefix_stripping_proxy(app: FastAPI) -> None:
    page = TestClient(app, root_path="/api").get("/docs")
    assert all(url.startswith("/api/") for url in references(page.text)), page.text


def test_serve_docs_refuses_an_app_that_still_has_the_cdn_pages() -> None:
    with pytest.raises(ValueError, match="docs_url=None, redoc_url=None"):
        serve_docs(FastAPI())


def test_vendored_bundle_is_the_version_noted() -> None:
    bundle = (STATIC_DIR / "swagger-ui-bundle.js").read_text(encoding="utf-8")
    assert f'PACKAGE_VERSION:"{SWAGGER_UI_VERSION}"' in bundle
    for notice in ("LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt"):
        assert (STATIC_DIR / notice).stat().st_size > 0, notice


def test_assets_are_package_data_and_reach_the_images() -> None:
    """pip install . (non-editable, as the Dockerfiles run it) copies only declared files."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "apidocs*" in setuptools["packages"]["find"]["include"]
    patterns = setuptools["package-data"]["apidocs"]
    for path in STATIC_DIR.iterdir():
        rel = path.relative_to(STATIC_DIR.parent).as_posix()
        assert any(fnmatch(rel, p) for p in patterns), f"{rel} would be left out of the wheel"
    for name in ("Dockerfile.gateway", "Dockerfile.model"):
        assert "COPY apidocs/ apidocs/" in (ROOT / name).read_text(), name
    assert "!apidocs/" in (ROOT / ".dockerignore").read_text().splitlines()
