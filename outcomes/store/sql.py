"""The SQL both stores share: schema, migrations, writes, the join, pruning, reads.

A store subclass supplies the connection, the transaction, and its dialect's few differences
(placeholders, the id column, the float type, how migrations are serialised).
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import time
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from outcomes.join import customer_bounds, label_sql
from outcomes.records import (
    ASSIGNMENTS,
    SHADOW,
    Answered,
    Labelled,
    LabelledColumns,
    NotAPrediction,
    Outcome,
    OutcomeTally,
    Prediction,
    ShadowPairColumns,
    decode_answers,
    encode_answers,
    predictions_of,
)
from outcomes.store.base import PredictionStore, SchemaTooNew, StoreError

__all__ = ["MIGRATIONS", "SqlStore"]

UNMATCHED_KEYS_REPORTED = 20

# (version, what it does, statements). {id}: the dialect's auto-increment primary key,
# {real}: its double-precision float. Never edit a shipped migration: add the next one.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "predictions and outcomes",
        (
            """CREATE TABLE predictions (
                id {id},
                time {real} NOT NULL,
                request_id TEXT NOT NULL,
                row_index INTEGER NOT NULL,
                customer_key TEXT,
                version TEXT NOT NULL,
                assignment TEXT NOT NULL,
                routing_revision TEXT NOT NULL,
                churn_probability {real} NOT NULL,
                risk_tier TEXT NOT NULL,
                features TEXT
            )""",
            "CREATE INDEX predictions_request ON predictions (request_id, row_index)",
            # No index on customer_key: see outcomes/join.py (random keys made it most of the
            # write cost); customer joins read their window in time order instead.
            "CREATE INDEX predictions_time ON predictions (time)",
            """CREATE TABLE outcomes (
                id {id},
                kind TEXT NOT NULL,
                key TEXT NOT NULL,
                row_index INTEGER NOT NULL,
                churned INTEGER NOT NULL,
                observed_at {real} NOT NULL,
                received_at {real} NOT NULL,
                UNIQUE (kind, key, row_index, observed_at)
            )""",
            "CREATE INDEX outcomes_observed ON outcomes (observed_at)",
        ),
    ),
    (
        2,
        "labels: each labelled prediction with its outcome, as the quality report reads it",
        (
            """CREATE TABLE labels (
                prediction_id BIGINT PRIMARY KEY,
                outcome_id BIGINT NOT NULL,
                time {real} NOT NULL,
                version TEXT NOT NULL,
                assignment TEXT NOT NULL,
                churn_probability {real} NOT NULL,
                risk_tier TEXT NOT NULL,
                churned INTEGER NOT NULL,
                request_id TEXT NOT NULL,
                row_index INTEGER NOT NULL,
                customer_key TEXT
            )""",
            "CREATE INDEX labels_time ON labels (time)",
            "CREATE INDEX labels_version_time ON labels (version, time)",
            "CREATE INDEX labels_outcome ON labels (outcome_id)",
        ),
    ),
    (
        3,
        "answer batches: each flush's answers as the gateway had them, made into rows later",
        (
            """CREATE TABLE answer_batches (
                id {id},
                time_last {real} NOT NULL,
                answers {blob} NOT NULL
            )""",
        ),
    ),
    (
        4,
        "labels by request: the quality report pairs shadow rows with served answers",
        ("CREATE INDEX labels_request ON labels (request_id, row_index)",),
    ),
)
LATEST = MIGRATIONS[-1][0]

_STAGED_COLUMNS = "kind, key, row_index, churned, observed_at"
# This batch's outcomes as stored (ids included), duplicates of earlier posts too: joining a
# duplicate again labels predictions that reached the store after its first post.
_BATCH_OUTCOMES = (
    "SELECT DISTINCT o.id, o.kind, o.key, o.row_index, o.churned, o.observed_at, o.received_at "
    "FROM outcomes o JOIN staged s ON o.kind = s.kind AND o.key = s.key "
    "AND o.row_index = s.row_index AND o.observed_at = s.observed_at"
)
_UNLABELLED_OUTCOMES = (
    "SELECT o.id, o.kind, o.key, o.row_index, o.churned, o.observed_at, o.received_at "
    "FROM outcomes o "
    "WHERE NOT EXISTS (SELECT 1 FROM labels l WHERE l.outcome_id = o.id)"
)
# The outcomes one statement joins, copied into a temporary table indexed by key, so each
# prediction read looks its key up (a subquery there was re-read per prediction).
_JOINING_COLUMNS = "id, kind, key, row_index, churned, observed_at, received_at"
_JOINING = f"SELECT {_JOINING_COLUMNS} FROM joining"
_PREDICTION_COLUMNS = (
    "time, request_id, row_index, customer_key, version, assignment, routing_revision, "
    "churn_probability, risk_tier, features"
)


# The versions in labels, one index probe each (a loose index scan on labels_version_time),
# not a scan of every row.
_LABELLED_VERSIONS = (
    "WITH RECURSIVE v(version) AS (SELECT MIN(version) FROM labels UNION ALL "
    "SELECT (SELECT MIN(version) FROM labels WHERE version > v.version) FROM v "
    "WHERE v.version IS NOT NULL) SELECT version FROM v WHERE version IS NOT NULL"
)
# One number a row besides the probability: version, assignment and outcome packed as
# version * 128 + assignment * 2 + churned, so a million rows cross into Python as two floats
# each and land in numpy in one pass. ``+time``: a window is most of the table, which one
# scan reads faster than the time index does row by row (SQLite would take the index).
_CODE_STRIDE = 128
_UNKNOWN = 63
_SHADOW_PAIRS = (
    "SELECT s.version, l.version, s.churn_probability, l.churn_probability, l.churned "
    "FROM labels s JOIN labels l ON l.request_id = s.request_id AND l.row_index = s.row_index "
    f"WHERE s.assignment = '{SHADOW}' AND l.assignment <> '{SHADOW}' AND s.version <> l.version "
    "AND +s.time >= ? AND +s.time < ? AND +l.time >= ? AND +l.time < ?"
)


class SqlStore(PredictionStore):
    ID_COLUMN: str = "INTEGER PRIMARY KEY"
    REAL: str = "REAL"
    BLOB: str = "BLOB"
    # Appended to the SELECT that claims batches to materialize (PostgreSQL: skip the ones
    # another process is making).
    CLAIM_LOCK: str = ""
    MATERIALIZE_CHUNK = 50  # batches a transaction

    # --- what a dialect supplies ---

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A cursor inside one transaction: committed on exit, rolled back on an exception,
        driver errors raised as StoreError."""

    @abc.abstractmethod
    def _lock_migrations(self, cursor: Any) -> None:
        """Inside the migration transaction: keep other processes out until it commits."""

    @abc.abstractmethod
    def _create_staging(self, cursor: Any) -> None:
        """Make the connection-private tables of an outcomes batch, empty: ``staged`` (as
        posted) and ``joining`` (stored outcomes to join, _JOINING_COLUMNS, indexed by key)."""

    def _sql(self, statement: str) -> str:
        return statement

    # --- schema ---

    def schema_version(self) -> int:
        with self._transaction() as cursor:
            return self._version(cursor)

    def _version(self, cursor: Any) -> int:
        cursor.execute(
            self._sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                f"(version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at {self.REAL})"
            )
        )
        cursor.execute("SELECT MAX(version) FROM schema_migrations")
        found = cursor.fetchone()[0]
        return int(found) if found is not None else 0

    def _migrate_or_close(self) -> None:
        """Bring a newly opened store to the current schema; a refused store leaves no
        connection behind."""
        try:
            self.migrate()
        except BaseException:
            self.close()
            raise

    def migrate(self, target: int | None = None) -> int:
        target = LATEST if target is None else target
        for version, description, statements in MIGRATIONS:
            if version > target:
                break
            with self._transaction() as cursor:
                self._lock_migrations(cursor)
                current = self._version(cursor)
                if current > LATEST:
                    raise SchemaTooNew(
                        f"the prediction store is at schema {current}; this gateway knows "
                        f"up to {LATEST}: upgrade it before pointing it at this store"
                    )
                if current >= version:
                    continue
                for statement in statements:
                    cursor.execute(
                        self._sql(
                            statement.format(id=self.ID_COLUMN, real=self.REAL, blob=self.BLOB)
                        )
                    )
                cursor.execute(
                    self._sql(
                        "INSERT INTO schema_migrations (version, description, applied_at) "
                        "VALUES (?, ?, ?)"
                    ),
                    (version, description, time.time()),
                )
        return self.schema_version()

    # --- writes ---

    def write_predictions(self, rows: Sequence[Prediction]) -> int:
        if not rows:
            return 0
        with self._transaction() as cursor:
            self._insert_rows(cursor, rows)
        return len(rows)

    def _insert_rows(self, cursor: Any, rows: Sequence[Prediction]) -> None:
        statement = self._sql(
            f"INSERT INTO predictions ({_PREDICTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        cursor.executemany(statement, [_prediction_values(row) for row in rows])

    def write_answers(self, answers: Sequence[Answered]) -> int:
        if not answers:
            return 0
        blob = encode_answers(answers)
        last = max(a.time for a in answers)
        with self._transaction() as cursor:
            cursor.execute(
                self._sql("INSERT INTO answer_batches (time_last, answers) VALUES (?, ?)"),
                (last, blob),
            )
        return len(answers)

    def materialize(self, max_batches: int | None = None) -> tuple[int, int]:
        made = unparsable = 0
        left = max_batches
        while left is None or left > 0:
            chunk = self.MATERIALIZE_CHUNK if left is None else min(left, self.MATERIALIZE_CHUNK)
            with self._transaction() as cursor:
                cursor.execute(
                    self._sql(
                        "SELECT id, answers FROM answer_batches ORDER BY id LIMIT ?"
                        + self.CLAIM_LOCK
                    ),
                    (chunk,),
                )
                claimed = cursor.fetchall()
                if not claimed:
                    break
                rows: list[Prediction] = []
                for _, blob in claimed:
                    for answered in decode_answers(bytes(blob)):
                        try:
                            rows.extend(predictions_of(answered))
                        except NotAPrediction:
                            unparsable += 1
                if rows:
                    self._insert_rows(cursor, rows)
                ids = [row[0] for row in claimed]
                cursor.execute(
                    self._sql(
                        f"DELETE FROM answer_batches WHERE id IN ({', '.join('?' for _ in ids)})"
                    ),
                    ids,
                )
            made += len(rows)
            if left is not None:
                left -= len(claimed)
        return made, unparsable

    def write_outcomes(self, outcomes: Sequence[Outcome], *, window_s: float) -> OutcomeTally:
        tally = OutcomeTally(received=len(outcomes))
        if not outcomes:
            return tally
        self.materialize()
        by_request, by_customer = label_sql(_JOINING)
        self.materialize()
        with self._transaction() as cursor:
            self._create_staging(cursor)
            cursor.executemany(
                self._sql(f"INSERT INTO staged ({_STAGED_COLUMNS}) VALUES (?, ?, ?, ?, ?)"),
                [(o.kind, o.key, o.row, int(o.churned), float(o.observed_at)) for o in outcomes],
            )
            received_at = time.time()
            cursor.execute(
                self._sql(
                    f"INSERT INTO outcomes ({_STAGED_COLUMNS}, received_at) "
                    f"SELECT {_STAGED_COLUMNS}, ? FROM staged WHERE true "
                    "ON CONFLICT (kind, key, row_index, observed_at) DO NOTHING"
                ),
                (received_at,),
            )
            tally.new = max(cursor.rowcount, 0)
            tally.duplicates = tally.received - tally.new
            cursor.execute(f"INSERT INTO joining ({_JOINING_COLUMNS}) {_BATCH_OUTCOMES}")
            cursor.execute(self._sql(by_request))
            tally.labelled = max(cursor.rowcount, 0)
            tally.labelled += self._join_customers(cursor, by_customer, window_s)
            cursor.execute(
                self._sql(
                    "SELECT b.key, b.received_at FROM joining b WHERE NOT EXISTS "
                    "(SELECT 1 FROM labels l WHERE l.outcome_id = b.id) ORDER BY b.id"
                )
            )
            unmatched = cursor.fetchall()
            tally.unmatched = len(unmatched)
            # Those first stored by this batch: what the unmatched counter adds, once.
            tally.new_unmatched = sum(1 for _, at in unmatched if at == received_at)
            tally.unmatched_keys = [key for key, _ in unmatched[:UNMATCHED_KEYS_REPORTED]]
        return tally

    def join(self, *, window_s: float) -> int:
        by_request, by_customer = label_sql(_JOINING)
        self.materialize()
        with self._transaction() as cursor:
            self._create_staging(cursor)
            cursor.execute(f"INSERT INTO joining ({_JOINING_COLUMNS}) {_UNLABELLED_OUTCOMES}")
            cursor.execute(self._sql(by_request))
            labelled = max(int(cursor.rowcount), 0)
            return labelled + self._join_customers(cursor, by_customer, window_s)

    def _join_customers(self, cursor: Any, statement: str, window_s: float) -> int:
        cursor.execute(self._sql(customer_bounds(_JOINING)))
        lowest, highest = cursor.fetchone()
        if lowest is None:
            return 0
        cursor.execute(self._sql(statement), (window_s, lowest - window_s, highest))
        return max(int(cursor.rowcount), 0)

    def prune(
        self,
        *,
        max_age_s: float | None = None,
        max_rows: int | None = None,
        now: float | None = None,
    ) -> int:
        deleted = 0
        self.materialize()
        with self._transaction() as cursor:
            if max_age_s is not None:
                cutoff = (time.time() if now is None else now) - max_age_s
                cursor.execute(self._sql("DELETE FROM predictions WHERE time < ?"), (cutoff,))
                deleted += max(cursor.rowcount, 0)
                cursor.execute(self._sql("DELETE FROM labels WHERE time < ?"), (cutoff,))
                cursor.execute(self._sql("DELETE FROM outcomes WHERE observed_at < ?"), (cutoff,))
                cursor.execute(
                    self._sql("DELETE FROM answer_batches WHERE time_last < ?"), (cutoff,)
                )
            if max_rows is not None:
                # Ids grow with time: the rows past the newest max_rows ids are the oldest.
                cursor.execute(
                    self._sql("SELECT id FROM predictions ORDER BY id DESC LIMIT 1 OFFSET ?"),
                    (max_rows,),
                )
                found = cursor.fetchone()
                if found is not None:
                    cursor.execute(self._sql("DELETE FROM predictions WHERE id <= ?"), (found[0],))
                    deleted += max(cursor.rowcount, 0)
        return deleted

    # --- reads ---

    def labelled(
        self,
        *,
        start: float,
        end: float,
        version: str | None = None,
        assignments: Collection[str] | None = None,
    ) -> Labelled:
        where = ["time >= ?", "time < ?"]
        params: list[Any] = [start, end]
        if version is not None:
            where.append("version = ?")
            params.append(version)
        if assignments is not None:
            chosen = sorted(assignments)
            if not chosen:
                return Labelled([], [], [], [], [], [], [], [], [])
            where.append(f"assignment IN ({', '.join('?' for _ in chosen)})")
            params.extend(chosen)
        statement = (
            "SELECT time, version, assignment, churn_probability, risk_tier, churned, "
            f"request_id, row_index, customer_key FROM labels WHERE {' AND '.join(where)} "
            "ORDER BY time, prediction_id"
        )
        with self._transaction() as cursor:
            cursor.execute(self._sql(statement), params)
            rows = cursor.fetchall()
        if not rows:
            return Labelled([], [], [], [], [], [], [], [], [])
        t, v, a, p, tier, churned, rid, row, key = (
            list(column) for column in zip(*rows, strict=True)
        )
        return Labelled(t, v, a, p, tier, [bool(c) for c in churned], rid, row, key)

    def labelled_columns(self, *, start: float, end: float) -> LabelledColumns:
        with self._transaction() as cursor:
            cursor.execute(_LABELLED_VERSIONS)
            versions = tuple(sorted(str(v) for (v,) in cursor.fetchall()))
            if not versions:
                return LabelledColumns(
                    (),
                    np.zeros(0, dtype=np.intp),
                    np.zeros(0, dtype=np.int8),
                    np.zeros(0, dtype=np.float64),
                    np.zeros(0, dtype=np.bool_),
                )
            version_case = " ".join(f"WHEN ? THEN {i}" for i in range(len(versions)))
            assignment_case = " ".join(f"WHEN ? THEN {i}" for i in range(len(ASSIGNMENTS)))
            statement = (
                f"SELECT churn_probability, (CASE version {version_case} ELSE -1 END) "
                f"* {_CODE_STRIDE} + (CASE assignment {assignment_case} ELSE {_UNKNOWN} END) "
                "* 2 + churned FROM labels WHERE +time >= ? AND +time < ?"
            )
            cursor.execute(self._sql(statement), (*versions, *ASSIGNMENTS, start, end))
            flat = np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.float64)
        code = flat[1::2].astype(np.int64)
        version = (code // _CODE_STRIDE).astype(np.intp)
        assignment = ((code % _CODE_STRIDE) // 2).astype(np.int8)
        if version.size and (version.min() < 0 or assignment.max() == _UNKNOWN):
            raise StoreError("labels hold a row of an unknown version or assignment")
        return LabelledColumns(
            versions, version, assignment, np.ascontiguousarray(flat[0::2]), code % 2 == 1
        )

    def shadow_pairs(self, *, start: float, end: float) -> list[ShadowPairColumns]:
        with self._transaction() as cursor:
            cursor.execute(self._sql(_SHADOW_PAIRS), (start, end, start, end))
            rows = cursor.fetchall()
        groups: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
        for shadow_version, served_version, shadow_p, served_p, churned in rows:
            groups.setdefault((shadow_version, served_version), []).append(
                (shadow_p, served_p, churned)
            )
        pairs = []
        for (shadow_version, served_version), found in sorted(groups.items()):
            values = np.array(found, dtype=np.float64).reshape(-1, 3)
            pairs.append(
                ShadowPairColumns(
                    shadow_version,
                    served_version,
                    np.ascontiguousarray(values[:, 0]),
                    np.ascontiguousarray(values[:, 1]),
                    values[:, 2] != 0,
                )
            )
        return pairs

    def counts(self) -> dict[str, int]:
        self.materialize()
        found = {}
        with self._transaction() as cursor:
            for table in ("predictions", "outcomes", "labels"):
                cursor.execute(f"SELECT COUNT(*) FROM {table}")
                found[table] = int(cursor.fetchone()[0])
        return found


def _prediction_values(row: Prediction) -> tuple[object, ...]:
    return (
        row.time,
        row.request_id,
        row.row,
        row.customer_key,
        row.version,
        row.assignment,
        row.routing_revision,
        row.churn_probability,
        row.risk_tier,
        row.features,
    )
