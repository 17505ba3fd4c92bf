"""The one interface every prediction store has (SQLite, PostgreSQL), and its errors.

The gateway's writer stores each flush's answers as one raw batch (``write_answers``), which
costs the serving process next to nothing; the rows are made from the batches later
(``materialize``): by the writer when the gateway is quiet, and by any read or join before it
reads. Parsing and indexing a row was, done at once, most of the log's cost under load.

The writer calls ``write_predictions``; ``POST /outcomes`` and ``streamflow outcomes load``
call ``write_outcomes``; the quality report calls ``labelled_columns`` and ``shadow_pairs``
(``labelled`` gives every column, as lists, for everything else). Each store is used from one
thread at a time (the writer's own, or the caller's under a lock).
"""

from __future__ import annotations

import abc
from collections.abc import Collection, Sequence

from outcomes.records import (
    Answered,
    Labelled,
    LabelledColumns,
    Outcome,
    OutcomeTally,
    Prediction,
    ShadowPairColumns,
)

__all__ = ["PredictionStore", "SchemaTooNew", "StoreError"]


class StoreError(Exception):
    """The store could not do it (unreachable, unwritable, full): the caller decides what
    that costs (the writer drops and counts; an outcomes post answers 503)."""


class SchemaTooNew(StoreError):
    """The store's schema is newer than this code knows: never write to it."""


class PredictionStore(abc.ABC):
    """Predictions, outcomes and the labels that join them."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version the store is at (0: empty)."""

    @abc.abstractmethod
    def migrate(self, target: int | None = None) -> int:
        """Apply the migrations up to ``target`` (default: the latest), each once, in one
        transaction each, safe with several processes doing the same; returns the version."""

    @abc.abstractmethod
    def write_predictions(self, rows: Sequence[Prediction]) -> int:
        """Append a batch of predictions in one transaction; returns how many."""

    @abc.abstractmethod
    def write_answers(self, answers: Sequence[Answered]) -> int:
        """The writer's call: raw answers as the gateway had them, appended as one batch in
        one transaction, unparsed (``materialize`` makes them rows); returns how many."""

    @abc.abstractmethod
    def materialize(self, max_batches: int | None = None) -> tuple[int, int]:
        """Turn stored batches of answers into prediction rows (oldest first; at most
        ``max_batches``, default all), each batch exactly once even with several processes
        at it; returns (rows made, answers that were no prediction). Every read and join
        does this first, so callers never see a batch unmade."""

    @abc.abstractmethod
    def write_outcomes(self, outcomes: Sequence[Outcome], *, window_s: float) -> OutcomeTally:
        """Store a batch of validated outcomes and label the predictions they belong to
        (outcomes/join.py), all in one transaction: either all of it is written or nothing.
        Idempotent: an outcome already stored (same key, row and observed_at) counts as a
        duplicate, not again."""

    @abc.abstractmethod
    def join(self, *, window_s: float) -> int:
        """Join every outcome that has no label yet again (predictions that reached the store
        after their outcome); returns how many predictions were newly labelled."""

    @abc.abstractmethod
    def prune(
        self,
        *,
        max_age_s: float | None = None,
        max_rows: int | None = None,
        now: float | None = None,
    ) -> int:
        """Delete predictions older than ``max_age_s`` (and their labels and outcomes of that
        age), then the oldest predictions beyond ``max_rows``; returns predictions deleted."""

    @abc.abstractmethod
    def labelled(
        self,
        *,
        start: float,
        end: float,
        version: str | None = None,
        assignments: Collection[str] | None = None,
    ) -> Labelled:
        """Labelled predictions made in [start, end) (Unix seconds), of one version or all,
        of the given assignments or all, oldest first."""

    @abc.abstractmethod
    def labelled_columns(self, *, start: float, end: float) -> LabelledColumns:
        """Every labelled prediction made in [start, end): version, assignment, probability
        and outcome as arrays, in no particular order (what the quality report needs, read
        fast: the report over a million answers within 2 s)."""

    @abc.abstractmethod
    def shadow_pairs(self, *, start: float, end: float) -> list[ShadowPairColumns]:
        """Each labelled shadow prediction made in [start, end) joined with the labelled answer
        to the same request id and row that another version served in the window (the client
        got it; same outcome), grouped by (shadow version, served version), sorted by them."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Rows held: predictions, outcomes, labels."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> PredictionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
