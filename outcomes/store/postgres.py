"""PostgreSQL, for several gateways sharing one prediction log (psycopg 3, by URL).

The same schema and SQL as SQLite (outcomes/store/sql.py). Migrations take a transaction-level
advisory lock, so gateways starting together apply each migration once. A lost connection is
reopened on the next call: the writer keeps calling, and logging resumes when the server is back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import psycopg

from outcomes.store.base import StoreError
from outcomes.store.sql import SqlStore

__all__ = ["PostgresStore"]

# pg_advisory_xact_lock's key: any constant no other part of the database uses.
MIGRATION_LOCK = 0x5F_0C_0E_01
CONNECT_TIMEOUT_S = 3


class PostgresStore(SqlStore):
    ID_COLUMN = "BIGSERIAL PRIMARY KEY"
    REAL = "DOUBLE PRECISION"
    BLOB = "BYTEA"
    CLAIM_LOCK = " FOR UPDATE SKIP LOCKED"
    # json_agg in the order given, as text for orjson (PostgreSQL does not promise to keep a
    # subquery's order into an aggregate).
    COLUMN_AGGREGATE = "json_agg({column} ORDER BY time)::text"

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.connection: psycopg.Connection[tuple[object, ...]] | None = None
        self.lock = threading.Lock()
        if migrate:
            self._migrate_or_close()

    def _connect(self) -> psycopg.Connection[tuple[object, ...]]:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            try:
                connection = psycopg.connect(
                    self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
                )
            except psycopg.Error as exc:
                raise StoreError(f"prediction store {self._where()}: {exc}") from exc
            self.connection = connection
        return connection

    def _where(self) -> str:
        """The URL without its password, for messages."""
        try:
            info = psycopg.conninfo.conninfo_to_dict(self.url)
        except psycopg.Error:
            return "postgresql"
        return (
            f"postgresql://{info.get('host', '')}:{info.get('port', '')}/{info.get('dbname', '')}"
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
        with self.lock:
            connection = self._connect()
            try:
                with connection.transaction(), connection.cursor() as cursor:
                    yield cursor
            except psycopg.Error as exc:
                raise StoreError(f"prediction store {self._where()}: {exc}") from exc

    def _sql(self, statement: str) -> str:
        return statement.replace("?", "%s")

    def _lock_migrations(self, cursor: psycopg.Cursor[tuple[object, ...]]) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))

    def _create_staging(self, cursor: psycopg.Cursor[tuple[object, ...]]) -> None:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged (kind TEXT, key TEXT, row_index INTEGER, "
            "churned INTEGER, observed_at DOUBLE PRECISION) ON COMMIT DELETE ROWS"
        )
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS joining (id BIGINT, kind TEXT, key TEXT, "
            "row_index INTEGER, churned INTEGER, observed_at DOUBLE PRECISION, "
            "received_at DOUBLE PRECISION) ON COMMIT DELETE ROWS"
        )
        cursor.execute("CREATE INDEX IF NOT EXISTS joining_key ON joining (key)")

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(psycopg.Error):
                self.connection.close()
            self.connection = None
