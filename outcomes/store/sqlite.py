"""The embedded default: one SQLite file in WAL mode.

WAL lets readers (the quality report, an outcomes post) run beside the writer's thread, and
several gateway workers on one machine append to the same file (each waits its turn for the
write lock, up to ``busy_timeout``). ``synchronous=NORMAL`` is WAL's usual setting: a power cut
may lose the last transactions, never corrupt the file, and a killed process loses nothing it
committed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from outcomes.records import Answered
from outcomes.store.base import StoreError
from outcomes.store.sql import SqlStore

__all__ = ["SqliteStore"]

BUSY_TIMEOUT_MS = 5000

# A batch of answers as one JSON array, each [time, request_id, customer_key, version,
# assignment, revision, answer, request]: SQLite's JSON functions take the rows apart (a batch
# answer's ``predictions``, each with its row index), in C, in one statement. The writer's
# thread then holds the GIL only to join bytes: parsing in Python, and a GIL hand-over per
# row of executemany, slowed the event loop beside it (bench/README.md).
_INSERT_ANSWERS = """
INSERT INTO predictions (time, request_id, row_index, customer_key, version, assignment,
                         routing_revision, churn_probability, risk_tier, features)
SELECT a.value ->> 0, a.value ->> 1, r.key, a.value ->> 2, a.value ->> 3, a.value ->> 4,
       a.value ->> 5, r.value ->> 'churn_probability', r.value ->> 'risk_tier',
       CASE
           WHEN json_type(a.value, '$[7]') IS NOT 'object' THEN NULL
           WHEN json_type(a.value, '$[7].customers') = 'array'
               THEN json_extract(a.value, '$[7].customers[' || r.key || ']')
           ELSE json_extract(a.value, '$[7]')
       END
FROM json_each(?) a,
     json_each(CASE
         WHEN json_type(a.value, '$[6].predictions') = 'array'
             THEN json_extract(a.value, '$[6].predictions')
         ELSE json_array(json_extract(a.value, '$[6]'))
     END) r
WHERE json_type(r.value, '$.churn_probability') IN ('real', 'integer')
  AND json_type(r.value, '$.risk_tier') = 'text'
"""


class SqliteStore(SqlStore):
    def __init__(self, path: Path | str, *, migrate: bool = True) -> None:
        self.path = Path(path)
        try:
            if str(path) != ":memory:":
                self.path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are ours (BEGIN ... COMMIT), not the module's.
            self.connection = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False
            )
            self.connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.connection.execute("PRAGMA journal_mode = WAL")
            self.connection.execute("PRAGMA synchronous = NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"prediction store {path}: {exc}") from exc
        # One connection, used by one thread at a time (a caller that shares it serialises).
        self.lock = threading.Lock()
        if migrate:
            try:
                self.migrate()
            except BaseException:
                self.close()  # a refused store leaves no connection behind
                raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Cursor]:
        with self.lock:
            try:
                cursor = self.connection.cursor()
            except sqlite3.Error as exc:
                raise StoreError(f"prediction store {self.path}: {exc}") from exc
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                cursor.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreError(f"prediction store {self.path}: {exc}") from exc
            except BaseException:
                self._rollback()
                raise
            finally:
                cursor.close()

    def write_answers(self, answers: Sequence[Answered]) -> tuple[int, int]:
        if not answers:
            return 0, 0
        parts = []
        for a in answers:
            head = orjson.dumps(
                [
                    a.time,
                    a.request_id.decode("latin-1"),
                    a.customer_key.decode("latin-1") if a.customer_key else None,
                    a.version,
                    a.assignment,
                    a.revision.decode("latin-1"),
                ]
            )
            parts.append(b"%s,%s,%s]" % (head[:-1], a.body, a.request or b"null"))
        document = b"[" + b",".join(parts) + b"]"
        try:
            with self._transaction() as cursor:
                cursor.execute(_INSERT_ANSWERS, (document.decode("utf-8", "replace"),))
                return max(cursor.rowcount, 0), 0
        except StoreError as exc:
            if "malformed JSON" not in str(exc):
                raise
        # An answer that is not JSON spoils the batch's document: parse them one by one.
        return super().write_answers(answers)

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            if self.connection.in_transaction:
                self.connection.execute("ROLLBACK")

    def _lock_migrations(self, cursor: sqlite3.Cursor) -> None:
        pass  # BEGIN IMMEDIATE already holds the database's one write lock

    def _create_staging(self, cursor: sqlite3.Cursor) -> None:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged "
            "(kind TEXT, key TEXT, row_index INTEGER, churned INTEGER, observed_at REAL)"
        )
        cursor.execute("DELETE FROM staged")
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS joining (id INTEGER, kind TEXT, key TEXT, "
            "row_index INTEGER, churned INTEGER, observed_at REAL, received_at REAL)"
        )
        cursor.execute("CREATE INDEX IF NOT EXISTS temp.joining_key ON joining (key)")
        cursor.execute("DELETE FROM joining")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.connection.close()
