"""/docs of a real gateway process (uvicorn with the gateway's server protocol), over HTTP.

The unit tests drive the app in-process; here the page, its assets (files of 0.2 to 1.7 MB) and
the OpenAPI document go through the protocol production runs, on one keep-alive connection.
No replica is needed: the docs are the gateway's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apidocs import STATIC_DIR
from tests.integration.procs import Process, free_port, gateway, routing_yaml, wait_for

HOSTS = {"v2.3.1": ["model-a"], "v2.4.0": ["model-b"]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    tmp = tmp_path_factory.mktemp("docs")
    routing = tmp / "routing.yaml"
    routing.write_text(routing_yaml(HOSTS, weights={"v2.3.1": 100, "v2.4.0": 0}))
    # Nothing listens on these ports: the replicas are down, the docs must not care.
    resolve = {f"{host}:8000": f"127.0.0.1:{free_port()}" for host in ("model-a", "model-b")}
    proc = gateway(routing, resolve).start(tmp)
    try:
        wait_for(f"http://{proc.address}/health", timeout=30)
        yield proc
    finally:
        proc.stop()


def test_docs_and_every_asset_come_from_the_gateway(gw: Process) -> None:
    with httpx.Client(base_url=f"http://{gw.address}", timeout=10) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page.text)
        assert len(assets) == 3, page.text  # script, style, icon
        for url in assets:
            answer = client.get(url)
            assert answer.status_code == 200, url
            assert answer.content == (STATIC_DIR / Path(url).name).read_bytes(), url
        document = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch"} <= set(document["paths"])
