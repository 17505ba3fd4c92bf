"""``streamflow quality``: the report as a table, the comparison with its intervals and
exclusions, and the gateway's own words when the prediction log is off."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from cli import quality
from cli.base import CommandError
from cli.client import fetch_json
from cli.main import main
from outcomes.quality.report import (
    QualityInput,
    ShadowPairs,
    VersionRows,
    assignment_codes,
    build_report,
)


def report() -> dict[str, Any]:
    rng = np.random.default_rng(1)
    truth = rng.random(2000)
    y = rng.random(2000) < truth
    stable = np.clip(truth + rng.normal(0, 0.2, 2000), 0.01, 0.99)
    cand = np.clip(truth + rng.normal(0, 0.1, 2000), 0.01, 0.99)
    names = np.where(np.arange(2000) % 20 == 0, "pinned", "weighted")
    data = QualityInput(
        stable="v2.3.1",
        candidate="v2.4.0",
        versions=(
            VersionRows("v2.3.1", stable[:1500], y[:1500], assignment_codes(names[:1500])),
            VersionRows("v2.4.0", cand[1500:], y[1500:], assignment_codes(names[1500:])),
        ),
        pairs=(ShadowPairs("v2.4.0", "v2.3.1", cand[:1500], stable[:1500], y[:1500]),),
    )
    out = build_report(data)
    out["window"] = {"start": 0, "end": 86400 * 7, "seconds": 86400 * 7}
    return out


def test_the_table_and_the_comparison() -> None:
    lines = quality.format_quality(report())
    text = "\n".join(lines)
    assert "over predictions of the last 7 d" in text
    header = next(line for line in lines if line.startswith("version"))
    for column in ("labelled", "churn", "AUC [95%]", "Brier", "log loss", "ECE", "high churn"):
        assert column in header
    assert any(line.startswith("v2.3.1") and " 1500 " in line for line in lines)
    assert "paired (shadow rows" in text and "unpaired (canary split" in text
    assert "excluded   v2.3.1: 75 pinned" in text
    assert "excluded   v2.4.0: 25 pinned" in text
    assert "outcomes   1500 v2.4.0, 1500 v2.3.1" in text


def test_no_outcomes_yet() -> None:
    empty = {"stable": "v2.3.1", "candidate": None, "window": {"seconds": 3600}, "versions": {}}
    assert quality.format_quality(empty)[-1].startswith("no labelled predictions yet")


def test_the_gateway_says_why_when_the_log_is_off() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": "prediction_log_off", "detail": "set GATEWAY_PREDICTION_LOG=1"}
        return httpx.Response(404, json=body)

    with pytest.raises(CommandError, match="404: set GATEWAY_PREDICTION_LOG=1"):
        fetch_json("http://gw", "/quality", transport=httpx.MockTransport(handler))


def test_the_command_asks_for_the_window(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked: list[str] = []

    def fake_fetch(url: str, path: str, **kwargs: object) -> dict[str, Any]:
        asked.append(path)
        return report()

    monkeypatch.setattr(quality, "fetch_json", fake_fetch)
    assert main(["quality", "--window", "7d", "--candidate", "v2.4.0"]) == 0
    assert asked == ["/quality?window=7d&candidate=v2.4.0"]
    assert "AUC [95%]" in capsys.readouterr().out
