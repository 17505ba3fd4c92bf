"""`streamflow shadow`: GET /shadow of a running gateway, as a table an operator reads."""

import json

import httpx
import respx

from cli.shadow import format_shadow
from gateway.shadow.compare import Row, compare_row
from gateway.shadow.report import build_report
from gateway.shadow.tally import PairTally
from tests.cli.samples import run

URL = "http://127.0.0.1:8080"


def sample_report() -> dict:
    tally = PairTally()
    rows = [
        compare_row(Row(0.10, "low", ("tenure",)), Row(0.12, "low", ("tenure",))),
        compare_row(Row(0.55, "medium", ("contract_type",)), Row(0.71, "high", ("tenure",))),
    ]
    tally.add(rows, "req-7", {"primary": 0.002, "shadow": 0.003})
    tally.count("timeout")
    report = build_report({"version": "v2.4.0", "percent": 10}, "2026-12-01T09:00:00+00:00",
                          {"v2.3.1": tally})  # fmt: skip
    return json.loads(json.dumps(report))


@respx.mock
def test_table_shows_agreement_matrix_psi_and_disagreements(capsys):
    respx.get(f"{URL}/shadow").mock(return_value=httpx.Response(200, json=sample_report()))
    code, out, _ = run(capsys, "shadow")
    assert code == 0
    assert "v2.4.0 at 10% of predictions, since 2026-12-01T09:00:00+00:00" in out
    assert "client v2.3.1 vs shadow v2.4.0" in out
    assert "mirrored 2, compared 1, dropped 0, failed 1 (timeout 1)" in out
    assert "tier agreement  50.0% of 2 rows" in out
    matrix = [line.split() for line in out.splitlines() if line.strip().startswith("client ")]
    assert ["client", "medium", "0", "0", "1"] in matrix
    assert "same first feature 50.0%" in out
    assert "req-7" in out and "0.5500 medium" in out and "0.7100 high" in out
    assert "PSI" in out and "major shift" in out


@respx.mock
def test_json_prints_the_report(capsys):
    report = sample_report()
    respx.get(f"{URL}/shadow").mock(return_value=httpx.Response(200, json=report))
    code, out, _ = run(capsys, "shadow", "--json")
    assert code == 0 and json.loads(out) == report


@respx.mock
def test_off_and_nothing_yet(capsys):
    off = {"active": False, "shadow": None, "since": None, "pairs": []}
    respx.get(f"{URL}/shadow").mock(return_value=httpx.Response(200, json=off))
    assert "shadow  off" in run(capsys, "shadow")[1]
    waiting = {"active": True, "shadow": {"version": "v2.4.0", "percent": 5}, "since": None,
               "pairs": []}  # fmt: skip
    respx.get(f"{URL}/shadow").mock(return_value=httpx.Response(200, json=waiting))
    out = run(capsys, "shadow")[1]
    assert "since no copy yet" in out and "nothing compared yet" in out


def test_no_gateway_is_one_line(capsys):
    code, _, err = run(capsys, "shadow", "--url", "http://127.0.0.1:1")
    assert code == 1
    assert err.strip() == (
        "no gateway answering at http://127.0.0.1:1 (--url or $STREAMFLOW_URL for another)"
    )


def test_a_shadow_at_zero_percent_is_said_not_active() -> None:
    zero = {"active": False, "shadow": {"version": "v2.4.0", "percent": 0}, "since": None,
            "pairs": []}  # fmt: skip
    assert format_shadow(zero) == [
        "shadow  v2.4.0 at 0%: configured, NOT active (raise percent above 0 in routing.yaml to "
        "compare)"
    ]
