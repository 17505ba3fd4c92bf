"""Outcomes in: every bad row named with its field, nothing of a bad batch written."""

from __future__ import annotations

import io

import pytest

from outcomes.ingest import IngestError, parse_batch, read_rows, sniff_format
from outcomes.join import DEFAULT_WINDOW_S
from outcomes.store.base import PredictionStore


def test_good_outcomes_parse() -> None:
    got = parse_batch(
        [
            {"request_id": "r1", "churned": True, "observed_at": "2027-01-01T00:00:00Z"},
            {"request_id": "r2", "row": 3, "churned": False, "observed_at": 1_800_000_000},
            {"customer_id": "c9", "churned": "true", "observed_at": "2027-01-01T00:00:00"},
        ]
    )
    assert [(o.kind, o.key, o.row, o.churned) for o in got] == [
        ("request", "r1", 0, True),
        ("request", "r2", 3, False),
        ("customer", "c9", 0, True),
    ]
    assert got[0].observed_at == got[2].observed_at == 1798761600.0  # no zone: UTC


@pytest.mark.parametrize(
    ("item", "field", "words"),
    [
        ({"churned": True, "observed_at": 1}, "request_id", "exactly one"),
        (
            {"request_id": "r", "customer_id": "c", "churned": True, "observed_at": 1},
            "request_id",
            "exactly one",
        ),
        ({"request_id": "r", "observed_at": 1}, "churned", "missing"),
        ({"request_id": "r", "churned": "maybe", "observed_at": 1}, "churned", "true or false"),
        ({"request_id": "r", "churned": True}, "observed_at", "missing"),
        (
            {"request_id": "r", "churned": True, "observed_at": "yesterday"},
            "observed_at",
            "ISO 8601",
        ),
        (
            {"request_id": "r", "churned": True, "observed_at": 1, "churn": 1},
            "churn",
            "unknown field",
        ),
        ({"request_id": "r", "row": -1, "churned": True, "observed_at": 1}, "row", ">= 0"),
        (
            {"customer_id": "c", "row": 1, "churned": True, "observed_at": 1},
            "row",
            "request_id only",
        ),
        ({"request_id": "", "churned": True, "observed_at": 1}, "request_id", "characters"),
        ({"request_id": ["r"], "churned": True, "observed_at": 1}, "request_id", "string"),
        ("not an object", "", "object"),
    ],
)
def test_a_bad_row_is_named_with_its_field(item: object, field: str, words: str) -> None:
    good = {"request_id": "ok", "churned": True, "observed_at": 1}
    with pytest.raises(IngestError) as caught:
        parse_batch([good, item])
    (problem,) = caught.value.problems
    assert (problem.row, problem.field) == (1, field)
    assert words in problem.message


def test_ten_thousand_bad_rows_are_each_named_and_nothing_is_written(
    store: PredictionStore,
) -> None:
    batch: list[object] = [
        {"request_id": f"r{i}", "churned": True, "observed_at": 1} for i in range(10_000)
    ]
    for i in range(0, 20_000, 2):
        batch.insert(i + 1, {"request_id": f"bad{i}", "churned": "perhaps", "observed_at": 1})
    with pytest.raises(IngestError) as caught:
        parse_batch(batch)
    problems = caught.value.problems
    assert len(problems) == 10_000
    assert [p.row for p in problems] == list(range(1, 20_000, 2))
    assert {p.field for p in problems} == {"churned"}
    assert "10000 invalid outcome rows, nothing written" in str(caught.value)
    assert store.counts() == {"predictions": 0, "outcomes": 0, "labels": 0}


def test_a_failing_write_leaves_nothing_half_written(store: PredictionStore) -> None:
    outcomes = parse_batch(
        [{"request_id": f"r{i}", "churned": True, "observed_at": 1} for i in range(100)]
    )
    original = store._create_staging  # type: ignore[attr-defined]

    def break_midway(cursor: object) -> None:
        original(cursor)
        raise RuntimeError("the connection died halfway")

    store._create_staging = break_midway  # type: ignore[attr-defined,method-assign]
    with pytest.raises(RuntimeError):
        store.write_outcomes(outcomes, window_s=DEFAULT_WINDOW_S)
    store._create_staging = original  # type: ignore[method-assign]
    assert store.counts()["outcomes"] == 0
    assert store.write_outcomes(outcomes, window_s=DEFAULT_WINDOW_S).new == 100


def test_csv_and_json_lines_stream_with_line_numbers() -> None:
    text = "request_id,churned,observed_at\nr1,true,1\nr2,false,2\n"
    rows = list(read_rows(io.StringIO(text), "csv"))
    assert rows == [
        (2, {"request_id": "r1", "churned": "true", "observed_at": "1"}),
        (3, {"request_id": "r2", "churned": "false", "observed_at": "2"}),
    ]
    lines = '{"request_id": "r1", "churned": true, "observed_at": 1}\n\nnot json\n'
    got = list(read_rows(io.StringIO(lines), "jsonl"))
    assert got[0] == (1, {"request_id": "r1", "churned": True, "observed_at": 1})
    assert got[1][0] == 3 and isinstance(got[1][1], ValueError)
    assert sniff_format("x.csv", "") == "csv"
    assert sniff_format("x", '{"a": 1}') == "jsonl"
