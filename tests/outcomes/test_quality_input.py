"""The quality report's input read from the store: per version, shadow pairs, the window; the
same on SQLite and PostgreSQL."""

from __future__ import annotations

import numpy as np
import pytest

from outcomes.quality.report import ASSIGNMENTS, build_report
from outcomes.quality_input import quality_input
from outcomes.records import Outcome
from outcomes.store.base import PredictionStore
from tests.outcomes.test_store import DAY, T0, by_request, prediction


def code(name: str) -> int:
    return ASSIGNMENTS.index(name)


def test_versions_and_shadow_pairs_from_the_store(store: PredictionStore) -> None:
    rows = [
        # Served by stable, shadowed by the candidate (paired).
        prediction("a", version="v1", probability=0.2, time=T0),
        prediction("a", version="v2", assignment="shadow", probability=0.25, time=T0),
        prediction("b", version="v1", probability=0.7, time=T0 + 1),
        prediction("b", version="v2", assignment="shadow", probability=0.8, time=T0 + 1),
        # A batch: row 1 shadowed.
        prediction("c", version="v1", row=1, probability=0.5, time=T0 + 2),
        prediction("c", version="v2", row=1, assignment="shadow", probability=0.55, time=T0 + 2),
        # Served by the candidate on the split, a pinned one, and one outside the window.
        prediction("d", version="v2", probability=0.9, time=T0 + 3),
        prediction("e", version="v1", assignment="pinned", probability=0.1, time=T0 + 4),
        prediction("f", version="v1", probability=0.3, time=T0 + 10 * DAY),
        # A shadow row whose served answer has no outcome: no pair.
        prediction("g", version="v1", probability=0.4, time=T0 + 5),
        prediction("g", version="v2", assignment="shadow", probability=0.4, time=T0 + 5),
    ]
    store.write_predictions(rows)
    outcomes = [
        by_request("a", churned=False),
        by_request("b", churned=True),
        by_request("c", churned=True, row=1),
        by_request("d", churned=True),
        by_request("e", churned=False),
        by_request("f", churned=True, at=T0 + 11 * DAY),
    ]
    store.write_outcomes(outcomes, window_s=30 * DAY)
    store.write_outcomes([Outcome(False, T0 + DAY, request_id="g")], window_s=30 * DAY)
    data = quality_input(store, start=T0, end=T0 + DAY, stable="v1", candidate="v2")
    assert (data.stable, data.candidate) == ("v1", "v2")
    assert data.window == {"start": T0, "end": T0 + DAY}
    assert [v.version for v in data.versions] == ["v1", "v2"]
    v1, v2 = data.versions
    assert v1.probability.tolist() == [0.2, 0.7, 0.5, 0.1, 0.4]
    assert v1.churned.tolist() == [False, True, True, False, False]
    assert v1.assignment.tolist() == [code("weighted")] * 3 + [code("pinned"), code("weighted")]
    assert v2.probability.tolist() == [0.25, 0.8, 0.55, 0.9, 0.4]
    assert v2.assignment.tolist() == [code("shadow")] * 3 + [code("weighted"), code("shadow")]
    [pairs] = data.pairs
    assert (pairs.shadow_version, pairs.served_version) == ("v2", "v1")
    assert pairs.shadow_probability.tolist() == [0.25, 0.8, 0.55, 0.4]
    assert pairs.served_probability.tolist() == [0.2, 0.7, 0.5, 0.4]
    assert pairs.churned.tolist() == [False, True, True, False]

    report = build_report(data)
    assert report["versions"]["v1"]["by_assignment"]["pinned"] == 1
    assert report["comparison"]["paired"]["candidate_outcomes"] == 4
    assert report["comparison"]["unpaired"]["candidate_outcomes"] == 1


def test_a_shadow_row_without_its_served_answer_has_no_pair(store: PredictionStore) -> None:
    store.write_predictions(
        [
            prediction("a", version="v2", assignment="shadow", time=T0),
            prediction("b", version="v1", time=T0),
        ]
    )
    store.write_outcomes([by_request("a"), by_request("b")], window_s=30 * DAY)
    data = quality_input(store, start=T0, end=T0 + 1, stable="v1", candidate=None)
    assert data.pairs == ()
    assert [v.version for v in data.versions] == ["v1", "v2"]


def test_an_empty_window(store: PredictionStore) -> None:
    data = quality_input(store, start=T0, end=T0 + 1, stable="v1", candidate="v2")
    assert data.versions == () and data.pairs == ()
    report = build_report(data)
    assert report["versions"] == {}
    assert report["comparison"]["unpaired"] is None


@pytest.mark.parametrize("n", [20_000])
def test_many_rows_pair_by_request(store: PredictionStore, n: int) -> None:
    rng = np.random.default_rng(7)
    p = rng.random(n)
    rows = []
    for i in range(n):
        rows.append(prediction(f"r{i}", version="v1", probability=float(p[i]), time=T0 + i))
        if i % 2 == 0:
            rows.append(
                prediction(
                    f"r{i}",
                    version="v2",
                    assignment="shadow",
                    probability=float(p[i]) / 2,
                    time=T0 + i,
                )
            )
    store.write_predictions(rows)
    store.write_outcomes(
        [by_request(f"r{i}", churned=i % 3 == 0) for i in range(n)], window_s=DAY * 30
    )
    data = quality_input(store, start=T0, end=T0 + n, stable="v1", candidate="v2")
    [pairs] = data.pairs
    assert pairs.churned.size == n // 2
    np.testing.assert_allclose(pairs.shadow_probability, pairs.served_probability / 2)
