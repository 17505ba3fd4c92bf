"""Both /metrics endpoints pass `promtool check metrics` after real traffic."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.integration.procs import PROMTOOL, drive, promtool_check

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (make test installs Debian's prometheus)"
)


def test_gateway_and_model_metrics_pass_promtool(start_gateway, replicas) -> None:
    gw, _ = start_gateway(weights={"v2.3.1": 90, "v2.4.0": 10})
    url = f"http://{gw.address}"
    asyncio.run(drive(url, count=200))
    httpx.post(f"{url}/predict", json={}, headers={"X-Model-Version": "v0"})  # a 400
    gateway_text = httpx.get(f"{url}/metrics").text
    for name in (
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_replica_healthy",
        "gateway_route_weight_percent",
        "gateway_config_info",
    ):
        assert name in gateway_text
    checked = promtool_check(gateway_text)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    model_text = httpx.get(f"http://{replicas['model-v2-3-1-a'].address}/metrics").text
    assert "model_predictions_total" in model_text
    checked = promtool_check(model_text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
