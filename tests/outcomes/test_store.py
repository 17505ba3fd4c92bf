"""The store's semantics, the same on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from outcomes.join import DEFAULT_WINDOW_S
from outcomes.records import Outcome, Prediction
from outcomes.store.base import PredictionStore, SchemaTooNew
from outcomes.store.sql import LATEST

DAY = 86400.0
T0 = 1_800_000_000.0


def prediction(
    request_id: str = "r1",
    *,
    version: str = "v2.3.1",
    assignment: str = "weighted",
    time: float = T0,
    row: int = 0,
    customer: str | None = None,
    probability: float = 0.4,
) -> Prediction:
    tier = "low" if probability < 0.3 else "medium" if probability < 0.6 else "high"
    return Prediction(
        time, request_id, row, customer, version, assignment, "abc123", probability, tier
    )


def by_request(
    request_id: str, churned: bool = True, at: float = T0 + DAY, row: int = 0
) -> Outcome:
    return Outcome(churned, at, request_id=request_id, row=row)


def by_customer(customer: str, churned: bool = True, at: float = T0 + DAY) -> Outcome:
    return Outcome(churned, at, customer_id=customer)


def everything(store: PredictionStore) -> list[tuple[str, str, str, int, bool, float]]:
    got = store.labelled(start=0, end=T0 * 2)
    return sorted(
        zip(
            got.request_id, got.version, got.assignment, got.row, got.churned, got.time, strict=True
        )
    )


def test_a_new_store_is_at_the_latest_schema_and_reopening_applies_nothing(
    open_store: Callable[..., PredictionStore],
) -> None:
    store = open_store()
    assert store.schema_version() == LATEST
    store.write_predictions([prediction()])
    again = open_store()
    assert again.migrate() == LATEST
    assert again.counts()["predictions"] == 1


def test_migrations_apply_in_order_and_keep_the_data(
    open_store: Callable[..., PredictionStore],
) -> None:
    store = open_store(migrate=False)
    assert store.schema_version() == 0
    assert store.migrate(target=1) == 1
    store.write_predictions([prediction("kept")])
    assert store.migrate() == LATEST
    store.write_outcomes([by_request("kept")], window_s=DEFAULT_WINDOW_S)
    assert [row[0] for row in everything(store)] == ["kept"]


def test_a_store_from_newer_code_is_refused(open_store: Callable[..., PredictionStore]) -> None:
    store = open_store()
    with store._transaction() as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            store._sql(  # type: ignore[attr-defined]
                "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)"
            ),
            (LATEST + 1, "from the future", T0),
        )
    with pytest.raises(SchemaTooNew, match="upgrade"):
        open_store()


def test_request_id_labels_the_served_and_the_shadow_prediction(store: PredictionStore) -> None:
    store.write_predictions(
        [
            prediction("r1", version="v2.3.1", assignment="weighted", probability=0.2),
            prediction("r1", version="v2.4.0", assignment="shadow", probability=0.7),
            prediction("r2", version="v2.3.1"),
        ]
    )
    tally = store.write_outcomes([by_request("r1", churned=True)], window_s=DEFAULT_WINDOW_S)
    assert (tally.new, tally.labelled, tally.unmatched) == (1, 2, 0)
    got = store.labelled(start=0, end=T0 * 2)
    assert sorted(
        zip(got.version, got.assignment, got.churn_probability, got.churned, strict=True)
    ) == [
        ("v2.3.1", "weighted", 0.2, True),
        ("v2.4.0", "shadow", 0.7, True),
    ]


def test_request_id_and_row_label_one_row_of_a_batch(store: PredictionStore) -> None:
    store.write_predictions([prediction("b", row=i, probability=i / 10) for i in range(5)])
    store.write_outcomes([by_request("b", row=3)], window_s=DEFAULT_WINDOW_S)
    got = store.labelled(start=0, end=T0 * 2)
    assert (got.row, got.churn_probability) == ([3], [0.3])


def test_customer_id_labels_the_latest_prediction_per_version_in_the_window(
    store: PredictionStore,
) -> None:
    observed = T0 + 10 * DAY
    window = 5 * DAY
    store.write_predictions(
        [
            prediction("old", customer="c1", time=observed - 6 * DAY),  # before the window
            prediction("early", customer="c1", time=observed - 4 * DAY),
            prediction("latest", customer="c1", time=observed - 1 * DAY),  # v2.3.1's pick
            prediction("after", customer="c1", time=observed + 1),  # after the outcome
            prediction("v24", customer="c1", version="v2.4.0", time=observed - 2 * DAY),
            prediction("other", customer="c2", time=observed - 1 * DAY),
        ]
    )
    tally = store.write_outcomes([by_customer("c1", at=observed)], window_s=window)
    assert tally.labelled == 2
    assert [(row[0], row[1]) for row in everything(store)] == [
        ("latest", "v2.3.1"),
        ("v24", "v2.4.0"),
    ]


def test_the_same_outcome_twice_counts_once(store: PredictionStore) -> None:
    store.write_predictions([prediction("r1"), prediction("r2")])
    batch = [by_request("r1"), by_request("r2", churned=False)]
    first = store.write_outcomes(batch, window_s=DEFAULT_WINDOW_S)
    second = store.write_outcomes(batch, window_s=DEFAULT_WINDOW_S)
    assert (first.new, first.duplicates, first.labelled) == (2, 0, 2)
    assert (second.new, second.duplicates, second.labelled) == (0, 2, 0)
    assert store.counts() == {"predictions": 2, "outcomes": 2, "labels": 2}
    # Duplicates inside one batch count once too.
    third = store.write_outcomes([by_request("r3")] * 3, window_s=DEFAULT_WINDOW_S)
    assert (third.new, third.duplicates) == (1, 2)


def test_unmatched_outcomes_are_counted_and_named_not_errors(store: PredictionStore) -> None:
    store.write_predictions([prediction("r1")])
    tally = store.write_outcomes(
        [by_request("r1"), by_request("nobody"), by_customer("stranger")],
        window_s=DEFAULT_WINDOW_S,
    )
    assert (tally.new, tally.labelled, tally.unmatched) == (3, 1, 2)
    assert sorted(tally.unmatched_keys) == ["nobody", "stranger"]
    again = store.write_outcomes([by_customer("stranger")], window_s=DEFAULT_WINDOW_S)
    assert (again.unmatched, again.new_unmatched) == (1, 0)  # reported, not counted again


def test_an_outcome_before_its_prediction_joins_on_repost_or_rejoin(store: PredictionStore) -> None:
    first = store.write_outcomes([by_request("late"), by_request("later")], window_s=DAY)
    assert first.unmatched == 2
    store.write_predictions([prediction("late"), prediction("later")])
    again = store.write_outcomes([by_request("late")], window_s=DAY)
    assert (again.duplicates, again.labelled, again.unmatched) == (1, 1, 0)
    assert store.join(window_s=DAY) == 1  # "later"
    assert store.join(window_s=DAY) == 0
    assert store.counts()["labels"] == 2


def test_a_prediction_keeps_the_first_outcome_joined_to_it(store: PredictionStore) -> None:
    store.write_predictions([prediction("p", customer="c", time=T0)])
    store.write_outcomes([by_customer("c", churned=True, at=T0 + DAY)], window_s=5 * DAY)
    tally = store.write_outcomes(
        [by_customer("c", churned=False, at=T0 + 2 * DAY)], window_s=5 * DAY
    )
    assert (tally.new, tally.labelled, tally.unmatched) == (1, 0, 1)
    assert store.labelled(start=0, end=T0 * 2).churned == [True]


def test_pruning_by_age_and_by_rows(store: PredictionStore) -> None:
    store.write_predictions([prediction(f"r{i}", time=T0 + i * DAY) for i in range(10)])
    store.write_outcomes([by_request("r0", at=T0 + 0.5 * DAY)], window_s=DAY)
    # Older than 7 days at T0 + 9.5 days: r0, r1, r2 (and r0's label and outcome).
    assert store.prune(max_age_s=7 * DAY, now=T0 + 9.5 * DAY) == 3
    assert store.counts() == {"predictions": 7, "outcomes": 0, "labels": 0}
    assert store.prune(max_rows=4) == 3
    assert store.counts()["predictions"] == 4
    assert store.prune(max_rows=4, max_age_s=100 * DAY, now=T0) == 0


def test_labelled_reads_a_window_a_version_and_assignments(store: PredictionStore) -> None:
    rows = [
        prediction("a", version="v2.3.1", assignment="weighted", time=T0),
        prediction("b", version="v2.3.1", assignment="pinned", time=T0 + 1),
        prediction("c", version="v2.4.0", assignment="sticky", time=T0 + 2),
        prediction("d", version="v2.3.1", assignment="weighted", time=T0 + 3),
    ]
    store.write_predictions(rows)
    store.write_outcomes([by_request(r.request_id) for r in rows], window_s=DAY)
    assert store.labelled(start=T0, end=T0 + 3, version="v2.3.1").request_id == ["a", "b"]
    assert store.labelled(start=0, end=T0 * 2, assignments={"weighted", "sticky"}).request_id == [
        "a",
        "c",
        "d",
    ]
    assert len(store.labelled(start=0, end=T0 * 2, assignments=set())) == 0


def test_two_connections_share_one_store(open_store: Callable[..., PredictionStore]) -> None:
    """Two gateways (or a gateway and the CLI) on one log."""
    first, second = open_store(), open_store()
    first.write_predictions([prediction("from-first")])
    second.write_predictions([prediction("from-second")])
    tally = second.write_outcomes(
        [by_request("from-first"), by_request("from-second")], window_s=DAY
    )
    assert tally.labelled == 2
    assert first.counts()["labels"] == 2
