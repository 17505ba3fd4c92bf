"""The goodput-under-overload rows: the ratio, its bars and the printed table."""

from __future__ import annotations

from typing import Any

from bench import report
from bench.overload import CLIENT_TIMEOUT_S, goodput_ratio, render
from bench.wrk import WrkResult, combine


def row(factor: int, goodput: float, timeouts: int = 0) -> dict[str, Any]:
    return {
        "factor": factor,
        "workers": 2,
        "connections": 32 * factor,
        "requests": 1000,
        "rps": goodput * 1.5,
        "goodput_rps": goodput,
        "refused": 300 if factor > 1 else 0,
        "accepted_p99_ms": 40.0 * factor,
        "max_ms": 90.0 * factor,
        "timeouts": timeouts,
    }


def doc(*rows: dict[str, Any]) -> dict[str, Any]:
    return {
        "saturating_connections": 32,
        "inflight_cap": 16,
        "client_timeout_s": CLIENT_TIMEOUT_S,
        "rows": list(rows),
    }


def bars(overload: dict[str, Any]) -> dict[str, report.Bar]:
    full = {"measurements": [], "config": {"gateway_workers_held_to_bars": 2, "connections": [1]}}
    found = report.evaluate({**full, "overload": overload})
    return {bar.name.split(":")[0]: bar for bar in found}


def test_goodput_ratio_is_4x_over_1x() -> None:
    assert goodput_ratio(doc(row(1, 2000), row(4, 1900))) == 0.95
    assert goodput_ratio(doc(row(1, 0), row(4, 1900))) is None


def test_bars_hold_the_ratio_and_the_client_timeouts() -> None:
    found = bars(doc(row(1, 2000), row(4, 1700)))
    goodput = found["real replicas, 4x capacity"]
    assert goodput.measured == 0.85 and goodput.passed is False
    assert found["real replicas, 1x and 4x"].passed is True
    late = bars(doc(row(1, 2000), row(4, 1900, timeouts=3)))["real replicas, 1x and 4x"]
    assert late.measured == 3 and late.passed is False


def test_render_prints_each_load_and_the_ratio() -> None:
    text = render(doc(row(1, 2000), row(4, 1900)))
    assert "1x      32      2,000" in text
    assert "4x     128      1,900" in text and "30%" in text
    assert "goodput at 4x / 1x: 0.95" in text


def test_rounds_combine_goodput_and_sum_refusals_and_timeouts() -> None:
    def result(goodput: float, refused: int, timeouts: int) -> WrkResult:
        return WrkResult(128, 1000, 2.0, 500, 1, 2, 3, 1, 4, refused, goodput, refused, timeouts, 9)

    combined = combine([result(100, 1, 0), result(300, 2, 1), result(200, 3, 0)])
    assert combined.goodput_rps == 200 and combined.refused == 6 and combined.timeouts == 1
