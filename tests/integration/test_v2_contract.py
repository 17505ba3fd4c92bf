"""One input contract per model, with real processes: a real replica of stable and a V2-only
server (tests/integration/v2_standin.py) whose inputs differ, behind a real gateway.

The differing version gets no traffic (weighted to 100%, stable serves every request), a pin to
it is a 503 saying why, and /routing, ``streamflow status`` and the status page all show it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cli import main as streamflow
from model_server.schemas import EXAMPLE_CUSTOMER
from tests.integration.procs import Process, free_port, gateway, replica, wait_for

CHROMIUM = "/usr/bin/chromium"
REASON = "input contract differs from v2.3.1: tenure is FP64, not INT64"
ROUTING = """\
service: streamflow-churn
stable: v2.3.1
mode: canary
versions:
  v2.3.1:
    replicas: [http://model-v2-3-1-a:8000]
  v2.5.0:
    replicas: [http://mlserver-a:8080]
    protocol: v2
    model_name: churn-sk
    score: {output: predict_proba, column: 1}
canary:
  weights: {v2.3.1: 0, v2.5.0: 100}
pinning: {header: X-Model-Version, allow: [v2.3.1, v2.5.0]}
"""


@pytest.fixture(scope="module")
def stack(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("v2-contract")
    stable = replica("model-v2-3-1-a", "v2.3.1", artifacts_dir).start(tmp)
    port = free_port()
    argv = [sys.executable, "-m", "tests.integration.v2_standin", str(port), "churn-sk"]
    standin = Process("standin", [*argv, "v2.5.0", "tenure=FP64"], {}, port).start(tmp)
    gw: Process | None = None
    try:
        wait_for(f"http://{stable.address}/ready")
        wait_for(f"http://{standin.address}/v2/models/churn-sk/ready")
        routing = tmp / "routing.yaml"
        routing.write_text(ROUTING)
        resolve = {"model-v2-3-1-a:8000": stable.address, "mlserver-a:8080": standin.address}
        gw = gateway(routing, resolve).start(tmp)
        url = f"http://{gw.address}"
        wait_for(f"{url}/ready", timeout=30)
        yield url
        seen = httpx.get(f"http://{standin.address}/seen", timeout=5).json()
        assert seen == {"posts": 0}, "the version whose inputs differ got traffic"
    finally:
        for proc in (gw, standin, stable):
            if proc is not None:
                proc.stop()


def test_a_version_whose_inputs_differ_gets_no_traffic(stack: str) -> None:
    routing = httpx.get(f"{stack}/routing", timeout=5).json()
    (standin,) = [r for r in routing["replicas"] if r["version"] == "v2.5.0"]
    assert (standin["state"], standin["last_error"]) == ("contract_mismatch", REASON)
    assert routing["input_contract"]["versions"]["v2.5.0"] == {
        "status": "differs",
        "reason": REASON,
    }
    with httpx.Client(base_url=stack, timeout=10) as client:
        for _ in range(20):
            response = client.post("/predict", json=EXAMPLE_CUSTOMER)
            assert response.status_code == 200
            assert response.headers["X-Model-Version"] == "v2.3.1"
            assert response.headers["X-Route-Reason"] == "fallback"
        pinned = client.post(
            "/predict", json=EXAMPLE_CUSTOMER, headers={"X-Model-Version": "v2.5.0"}
        )
        assert pinned.status_code == 503
        assert pinned.json()["detail"].endswith(REASON)
        ready = client.get("/v2/models/churn/versions/v2.5.0/ready")
        assert ready.status_code == 503 and ready.json()["error"].endswith(REASON)


def test_streamflow_status_says_why(stack: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert streamflow(["status", "--url", stack]) == 0
    out = capsys.readouterr().out
    assert "v2.3.1 agrees; v2.5.0 differs" in out
    assert f"{REASON} (v2.5.0 gets no traffic)" in out


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK), reason=f"{CHROMIUM} not found")
def test_the_status_page_shows_it(stack: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{stack}/ui")
            page.wait_for_selector("#replicas-table tbody tr")
            row = '#replicas-table tr[data-replica="http://mlserver-a:8080"] [data-field="state"]'
            assert page.locator(row).inner_text() == "≠ inputs differ"
            warning = page.locator('[data-field="_inputs_differ"]').inner_text()
            assert warning == f"{REASON} (no traffic)"
            page.screenshot(path=str(tmp_path / "contract-differs.png"), full_page=True)
            assert errors == []
        finally:
            browser.close()
