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

from outcomes.records import Prediction
from outcomes.store.base import StoreError
from outcomes.store.sql import SqlStore

__all__ = ["SqliteStore"]

BUSY_TIMEOUT_MS = 5000

# A batch of rows as one JSON array of objects (orjson serialises the dataclasses in C), taken
# apart by SQLite's JSON functions in one statement: the GIL is released once a batch, where
# executemany released and took it back for every row.
_INSERT_ROWS = """
INSERT INTO predictions (time, request_id, row_index, customer_key, version, assignment,
                         routing_revision, churn_probability, risk_tier, features)
SELECT value ->> 'time', value ->> 'request_id', value ->> 'row', value ->> 'customer_key',
       value ->> 'version', value ->> 'assignment', value ->> 'routing_revision',
       value ->> 'churn_probability', value ->> 'risk_tier', value ->> 'features'
FROM json_each(?)
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
            self._migrate_or_close()

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

    def _insert_rows(self, cursor: sqlite3.Cursor, rows: Sequence[Prediction]) -> None:
        cursor.execute(_INSERT_ROWS, (orjson.dumps(list(rows)).decode(),))

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
