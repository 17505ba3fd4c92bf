"""The prediction store: one interface (base.py), SQLite (the default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from outcomes.store.base import PredictionStore, SchemaTooNew, StoreError

__all__ = ["DEFAULT_FILE", "PredictionStore", "SchemaTooNew", "StoreError", "open_store"]

DEFAULT_FILE = "predictions.sqlite3"


def open_store(url: str, data_dir: Path | None = None) -> PredictionStore:
    """``postgresql://...`` (or ``postgres://``): PostgreSQL; ``sqlite:///path`` or a plain
    path: that SQLite file; empty: ``predictions.sqlite3`` in ``data_dir``. Migrated on open."""
    if url.startswith(("postgresql://", "postgres://")):
        from outcomes.store.postgres import PostgresStore  # psycopg only when it is used

        return PostgresStore(url)
    from outcomes.store.sqlite import SqliteStore

    if url.startswith("sqlite:///"):
        return SqliteStore(url.removeprefix("sqlite:///"))
    if url:
        return SqliteStore(url)
    return SqliteStore((data_dir or Path("data")) / DEFAULT_FILE)


def describe(url: str, data_dir: Path | None = None) -> str:
    """Where the store is, for logs (no password)."""
    if url.startswith(("postgresql://", "postgres://")):
        head, _, tail = url.partition("@")
        return f"postgresql://…@{tail}" if tail else head
    if url:
        return url
    return str((data_dir or Path("data")) / DEFAULT_FILE)
