"""``streamflow outcomes load``: check the whole file, then post it in chunks; bounded memory."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import httpx
import orjson
import pytest

from cli.base import CommandError
from cli.main import main
from cli.outcomes import Progress, load
from outcomes.ingest import parse_batch
from outcomes.join import DEFAULT_WINDOW_S
from outcomes.records import Prediction
from outcomes.store.sqlite import SqliteStore

URL = "http://gateway.test"


def gateway_on(store: SqliteStore, posts: list[int]) -> httpx.MockTransport:
    """POST /outcomes as the gateway answers it, on ``store``."""

    def handle(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer t"
        batch = parse_batch(orjson.loads(request.content))
        posts.append(len(batch))
        return httpx.Response(
            200, json=store.write_outcomes(batch, window_s=DEFAULT_WINDOW_S).as_dict()
        )

    return httpx.MockTransport(handle)


def test_a_csv_is_loaded_in_chunks_and_loading_it_twice_counts_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "p.sqlite3")
    store.write_predictions(
        [
            Prediction(100.0, f"r{i}", 0, f"c{i}", "v2.3.1", "sticky", "rev", 0.5, "medium")
            for i in range(10)
        ]
    )
    lines = ["request_id,customer_id,row,churned,observed_at"]
    lines += [f"r{i},,0,{'true' if i % 2 else 'false'},200" for i in range(5)]
    lines += [f",c{i},,true,1970-01-01T00:03:20Z" for i in range(5, 10)]
    lines += [",stranger,,false,200"]
    path = tmp_path / "outcomes.csv"
    path.write_text("\n".join(lines) + "\n")
    posts: list[int] = []
    progress = io.StringIO()
    tally = load(path, URL, "t", None, 4, Progress(progress), gateway_on(store, posts))
    assert posts == [4, 4, 3]
    assert (tally.received, tally.new, tally.labelled, tally.unmatched) == (11, 11, 10, 1)
    assert "sending" in progress.getvalue() and "100%" in progress.getvalue()
    again = load(path, URL, "t", None, 100, Progress(io.StringIO()), gateway_on(store, posts))
    assert (again.new, again.duplicates, again.labelled) == (0, 11, 0)
    assert store.counts() == {"predictions": 10, "outcomes": 11, "labels": 10}


def test_a_file_with_bad_rows_names_each_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "outcomes.jsonl"
    good = {"request_id": "r", "churned": True, "observed_at": 1}
    path.write_text(
        "\n".join(
            [
                json.dumps(good),
                json.dumps({**good, "churned": "perhaps"}),
                "not json",
                json.dumps({"customer_id": "c", "churned": True}),
            ]
        )
        + "\n"
    )
    posts: list[int] = []
    with pytest.raises(CommandError, match="3 bad rows; nothing was sent"):
        load(
            path,
            URL,
            "t",
            None,
            10,
            Progress(io.StringIO()),
            gateway_on(SqliteStore(":memory:"), posts),
        )
    assert posts == []
    err = capsys.readouterr().err
    assert f"{path}:2: churned: must be true or false" in err
    assert f"{path}:3: not JSON" in err
    assert f"{path}:4: observed_at: missing" in err


def test_the_token_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STREAMFLOW_OUTCOMES_TOKEN", raising=False)
    path = tmp_path / "o.csv"
    path.write_text("request_id,churned,observed_at\nr,true,1\n")
    assert main(["outcomes", "load", str(path)]) == 1
    assert "STREAMFLOW_OUTCOMES_TOKEN" in capsys.readouterr().err


def peak_loading(path: Path, rows: int) -> int:
    with path.open("w") as handle:
        for i in range(rows):
            churned = "true" if i % 7 else "false"
            handle.write(f'{{"request_id":"r{i}","churned":{churned},"observed_at":1}}\n')
    seen = [0]

    def handle(request: httpx.Request) -> httpx.Response:
        count = len(orjson.loads(request.content))
        seen[0] += count
        return httpx.Response(
            200,
            json={"received": count, "new": count, "duplicates": 0, "labelled": 0, "unmatched": 0},
        )

    tracemalloc.start()
    try:
        transport = httpx.MockTransport(handle)
        tally = load(path, URL, "t", None, 5000, Progress(io.StringIO()), transport)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen[0] == tally.received == rows
    return peak


def test_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """A chunk at a time, never the file: four times the rows, the same peak (a million rows
    stream the same way; README, Outcomes, has the timing)."""
    small = peak_loading(tmp_path / "small.jsonl", 20_000)
    large = peak_loading(tmp_path / "large.jsonl", 80_000)
    assert large < small * 1.3 + 256 * 1024, (small, large)
    assert large < 16 * 1024 * 1024


def test_progress_counts_lines_and_never_draws_the_first_one_alone() -> None:
    out = io.StringIO()
    progress = Progress(out)
    progress.start("checking", 100)
    progress.advance(50)
    assert out.getvalue() == ""  # not "1 lines" the moment the file opens
    progress.done()
    assert out.getvalue().endswith(" 50%  1 line\n")
    progress.start("sending", 100)
    for _ in range(2):
        progress.advance(50)
    progress.done()
    assert out.getvalue().endswith("100%  2 lines\n")
