"""`streamflow status`: GET /routing of a running gateway, as lines and a table."""

import json
import re
import socket
from typing import Any

import httpx
import pytest
import respx

from cli import CommandError, status
from tests.cli.samples import run

ROUTING_DOC: dict[str, Any] = {
    "service": "streamflow-churn",
    "mode": "canary",
    "stable": "v2.3.1",
    "revision": "3c1247697ef6",
    "loaded_at": "2025-01-01T12:00:00Z",
    "last_reload_error": {
        "at": "2025-01-01T12:05:00Z",
        "messages": ["canary.weights: sum to 98, must be 100 (line 10)"],
    },
    "weights": {"v2.3.1": 90, "v2.4.0": 10},
    "blue_green": {"blue": "v2.3.1", "green": "v2.4.0", "live": "blue"},
    "sticky_header": "X-Customer-Id",
    "pinning": {"header": "X-Model-Version", "allow": ["v2.3.1", "v2.4.0"]},
    "shadow": {
        "configured": {"version": "v2.4.0", "percent": 0},
        "active": False,
        "note": "shadow v2.4.0 at 0%: nothing is mirrored",
    },
    "replicas": [
        {
            "version": "v2.3.1",
            "url": "http://model-v2-3-1-a:8000",
            "address": "127.0.0.1:9101",
            "state": "healthy",
            "healthy": True,
            "consecutive_failures": 0,
            "inflight": 2,
            "last_error": None,
        },
        {
            "version": "v2.4.0",
            "url": "http://model-v2-4-0-a:8000",
            "address": "127.0.0.1:9103",
            "state": "ejected",
            "healthy": False,
            "consecutive_failures": 3,
            "inflight": 0,
            "last_error": "connect error",
        },
    ],
}


def test_status_prints_config_and_replicas(capsys: pytest.CaptureFixture[str]) -> None:
    with respx.mock(assert_all_called=True) as router:
        router.get("http://gw.test:8080/routing").respond(json=ROUTING_DOC)
        router.get("http://gw.test:8080/stats").respond(404, json={"error": "not_found"})
        code, out, err = run(capsys, "status", "--url", "http://gw.test:8080/")
    assert code == 0, err
    lines = out.splitlines()
    assert re.match(r"service\s+streamflow-churn$", lines[0])
    assert any(
        re.match(r"revision\s+3c1247697ef6 \(loaded 2025-01-01T12:00:00Z\)$", x) for x in lines
    )
    assert any(re.match(r"reload\s+FAILED at 2025-01-01T12:05:00Z", x) for x in lines)
    assert any(x.strip() == "canary.weights: sum to 98, must be 100 (line 10)" for x in lines)
    assert any(re.match(r"weights\s+v2\.3\.1 90%, v2\.4\.0 10%$", x) for x in lines)
    assert any(re.match(r"shadow\s+v2\.4\.0 0% configured, NOT active", x) for x in lines)
    header = next(x for x in lines if x.startswith("VERSION"))
    assert header.split() == [
        "VERSION",
        "URL",
        "ADDRESS",
        "STATE",
        "FAILS",
        "IN-FLIGHT",
        "LAST",
        "ERROR",
    ]
    rows = [x.split() for x in lines[lines.index(header) + 1 :]]
    assert rows[0] == [
        "v2.3.1",
        "http://model-v2-3-1-a:8000",
        "127.0.0.1:9101",
        "healthy",
        "0",
        "2",
    ]
    assert rows[1][:6] == [
        "v2.4.0",
        "http://model-v2-4-0-a:8000",
        "127.0.0.1:9103",
        "ejected",
        "3",
        "0",
    ]


def test_status_says_the_pages_verdict_first(capsys: pytest.CaptureFixture[str]) -> None:
    words = "v2.4.0 at 50% (step 2 of 3), every check passing, next step in 12 s"
    verdict = {"state": "in_progress", "tone": "ok", "text": words}
    with respx.mock(assert_all_called=True) as router:
        router.get("http://gw.test:8080/routing").respond(json=ROUTING_DOC)
        router.get("http://gw.test:8080/stats").respond(json={"verdict": verdict})
        code, out, err = run(capsys, "status", "--url", "http://gw.test:8080")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == words and lines[1] == ""
    assert re.match(r"service\s+streamflow-churn$", lines[2])


def test_status_shows_offline_quality_and_its_warning() -> None:
    said = "v2.4.0's holdout AUC 0.8373 is below stable v2.3.1's 0.8375"
    doc = {
        **ROUTING_DOC,
        "offline_quality": {
            "versions": {
                "v2.3.1": {"holdout_auc": 0.8375, "dataset_id": "synthetic-0fa7"},
                "v2.4.0": None,
            },
            "warning": said,
        },
    }
    lines = status.format_status(doc)
    assert any(
        re.match(
            r"offline\s+v2\.3\.1 holdout AUC 0\.8375 \(data synthetic-0fa7\); v2\.4\.0 unknown$", x
        )
        for x in lines
    )
    assert any(re.match(rf"WARNING\s+{re.escape(said)}$", x) for x in lines)


def test_status_shows_the_input_contract_and_a_version_that_breaks_it() -> None:
    reason = "input contract differs from v2.3.1: tenure is FP64, not INT64"
    doc = {
        **ROUTING_DOC,
        "input_contract": {
            "reference": {"version": "v2.3.1", "inputs": []},
            "versions": {
                "v2.3.1": {"status": "agrees"},
                "v2.4.0": {"status": "differs", "reason": reason},
            },
        },
    }
    lines = status.format_status(doc)
    assert any(re.match(r"inputs\s+v2\.3\.1 agrees; v2\.4\.0 differs$", x) for x in lines)
    expected = rf"WARNING\s+{re.escape(reason)} \(v2\.4\.0 gets no traffic\)$"
    assert any(re.match(expected, x) for x in lines)


def test_status_blue_green_shows_live_colour() -> None:
    doc = {**ROUTING_DOC, "mode": "blue_green", "last_reload_error": None}
    doc["blue_green"] = {"blue": "v2.3.1", "green": "v2.4.0", "live": "green"}
    lines = status.format_status(doc)
    assert any(re.match(r"live\s+green \(v2\.4\.0\)", x) for x in lines)
    assert any(re.match(r"reload\s+ok$", x) for x in lines)
    assert not any(x.startswith("weights") for x in lines)


def test_status_tolerates_missing_keys() -> None:
    lines = status.format_status({"service": "svc"})
    assert lines[0].split() == ["service", "svc"]
    assert lines[-1] == "no replicas reported"


def test_fetch_routing_with_mock_transport() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json=ROUTING_DOC)

    data = status.fetch_routing("http://gw.test", transport=httpx.MockTransport(handler))
    assert data == json.loads(json.dumps(ROUTING_DOC))
    assert seen == ["http://gw.test/routing"]


def test_fetch_routing_http_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(500, text="boom"))
    with pytest.raises(CommandError, match="answered GET /routing with 500"):
        status.fetch_routing("http://gw.test", transport=transport)


def test_status_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    code, out, err = run(capsys, "status", "--url", url)
    assert code == 1
    assert out == ""
    assert err == f"no gateway answering at {url} (--url or $STREAMFLOW_URL for another)\n"
