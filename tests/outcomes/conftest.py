"""Each store test runs against SQLite and a real PostgreSQL server alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from outcomes.store.base import PredictionStore
from outcomes.store.postgres import PostgresStore
from outcomes.store.sqlite import SqliteStore
from tests.outcomes.postgres_server import PostgresServer, binaries

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if binaries() is None:
        pytest.skip("PostgreSQL is not installed here (make tools installs it)")
    server = PostgresServer()
    server.start()
    server.wait_ready()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=BACKENDS)
def open_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., PredictionStore]]:
    """Opens stores on one fresh database of the parametrised backend (each call: another
    connection to the same database, as another gateway would have)."""
    opened: list[PredictionStore] = []
    if request.param == "sqlite":
        path = tmp_path / "predictions.sqlite3"

        def make(migrate: bool = True) -> PredictionStore:
            store = SqliteStore(path, migrate=migrate)
            opened.append(store)
            return store
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.new_database()

        def make(migrate: bool = True) -> PredictionStore:
            store = PostgresStore(url, migrate=migrate)
            opened.append(store)
            return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[..., PredictionStore]) -> PredictionStore:
    return open_store()
