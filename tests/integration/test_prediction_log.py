"""The prediction log and outcomes with real processes: a gateway over real replicas records
what each client got; outcomes come in over HTTP; the store fails under load and nobody notices
but the counters; a killed gateway loses at most its last flush interval."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from model_server.schemas import EXAMPLE_CUSTOMER
from outcomes.store.base import PredictionStore
from outcomes.store.postgres import PostgresStore
from outcomes.store.sqlite import SqliteStore
from tests.integration.conftest import HOSTS, resolve_map
from tests.integration.procs import Process, drive, gateway, routing_yaml, wait_for
from tests.outcomes.conftest import postgres_server  # noqa: F401 - the fixture
from tests.outcomes.postgres_server import PostgresServer

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FLUSH_S = 0.2


@pytest.fixture
def logging_gateway(
    replicas: dict[str, Process], tmp_path: Path, log_dir: Path
) -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(
        weights: dict[str, int] | None = None,
        shadow: dict[str, object] | None = None,
        **settings: object,
    ) -> Process:
        path = tmp_path / f"routing-{len(started)}.yaml"
        path.write_text(
            routing_yaml(HOSTS, weights=weights or {"v2.3.1": 50, "v2.4.0": 50}, shadow=shadow)
        )
        settings = {
            "prediction_log": "true",
            "data_dir": tmp_path / "data",
            "prediction_log_flush_s": FLUSH_S,
            "outcomes_token": TOKEN,
            **settings,
        }
        proc = gateway(path, resolve_map(replicas), **settings).start(log_dir)
        started.append(proc)
        wait_for(f"http://{proc.address}/ready", timeout=30)
        return proc

    yield start
    for proc in started:
        proc.stop()


def wait_rows(store: PredictionStore, rows: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while store.counts()["predictions"] < rows:
        assert time.monotonic() < deadline, f"{store.counts()} after {timeout}s, wanted {rows}"
        time.sleep(0.05)


def metric(url: str, name: str, labels: str = "") -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found[1]) if found else 0.0


def all_rows(store: PredictionStore) -> list[tuple[Any, ...]]:
    store.materialize()
    with store._transaction() as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            "SELECT request_id, row_index, customer_key, version, assignment, routing_revision, "
            "churn_probability, risk_tier FROM predictions ORDER BY id"
        )
        return list(cursor.fetchall())


def test_every_answer_is_recorded_as_the_client_got_it(
    logging_gateway: Callable[..., Process], tmp_path: Path
) -> None:
    proc = logging_gateway()
    url = f"http://{proc.address}"
    got: dict[str, tuple[httpx.Response, int]] = {}
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(20):
            answer = client.post(
                "/predict", json=EXAMPLE_CUSTOMER, headers={"X-Customer-Id": f"c{i}"}
            )
            got[answer.headers["X-Request-Id"]] = (answer, 1)
        pinned = client.post(
            "/predict", json=EXAMPLE_CUSTOMER, headers={"X-Model-Version": "v2.4.0"}
        )
        got[pinned.headers["X-Request-Id"]] = (pinned, 1)
        plain = client.post("/predict", json=EXAMPLE_CUSTOMER)
        got[plain.headers["X-Request-Id"]] = (plain, 1)
        batch = client.post("/predict/batch", json={"customers": [EXAMPLE_CUSTOMER] * 3})
        got[batch.headers["X-Request-Id"]] = (batch, 3)
        refused = client.post("/predict", json={"tenure": "x"})  # a 422 is not a prediction
        assert refused.status_code == 422
    store = SqliteStore(tmp_path / "data" / "predictions.sqlite3")
    wait_rows(store, 25)
    rows = all_rows(store)
    assert len(rows) == 25
    for request_id, row, key, version, assignment, revision, probability, tier in rows:
        answer, _ = got[request_id]
        assert version == answer.headers["X-Model-Version"]
        assert assignment == answer.headers["X-Route-Reason"]
        assert revision == answer.headers["X-Routing-Revision"]
        body = answer.json()
        one = body["predictions"][row] if "predictions" in body else body
        assert (probability, tier) == (one["churn_probability"], one["risk_tier"])
        if key is not None:
            assert answer.request.headers["X-Customer-Id"] == key
    reasons = {row[4] for row in rows}
    assert {"sticky", "pinned", "weighted"} <= reasons
    assert sorted(row[1] for row in rows if row[0] == batch.headers["X-Request-Id"]) == [0, 1, 2]
    store.close()


def test_compared_shadow_answers_are_recorded_as_shadow(
    logging_gateway: Callable[..., Process], tmp_path: Path
) -> None:
    proc = logging_gateway(
        weights={"v2.3.1": 100, "v2.4.0": 0}, shadow={"version": "v2.4.0", "percent": 100}
    )
    with httpx.Client(base_url=f"http://{proc.address}", timeout=30) as client:
        ids = [
            client.post(
                "/predict", json=EXAMPLE_CUSTOMER, headers={"X-Customer-Id": f"c{i}"}
            ).headers["X-Request-Id"]
            for i in range(10)
        ]
    store = SqliteStore(tmp_path / "data" / "predictions.sqlite3")
    wait_rows(store, 20)
    rows = all_rows(store)
    served = {(r[0], r[2]) for r in rows if r[4] == "sticky" and r[3] == "v2.3.1"}
    shadow = {(r[0], r[2]) for r in rows if r[4] == "shadow" and r[3] == "v2.4.0"}
    assert served == shadow == {(rid, f"c{i}") for i, rid in enumerate(ids)}
    # One outcome by request id labels both: the pair the paired comparison reads.
    answer = httpx.post(
        f"http://{proc.address}/outcomes",
        json=[{"request_id": ids[0], "churned": True, "observed_at": time.time()}],
        headers=AUTH,
    )
    assert answer.json()["labelled"] == 2
    store.close()


def test_outcomes_need_the_token_count_once_and_name_bad_rows(
    logging_gateway: Callable[..., Process], tmp_path: Path
) -> None:
    proc = logging_gateway()
    url = f"http://{proc.address}"
    with httpx.Client(base_url=url, timeout=30) as client:
        answers = [
            client.post("/predict", json=EXAMPLE_CUSTOMER, headers={"X-Customer-Id": f"cust{i}"})
            for i in range(10)
        ]
        now = time.time()
        outcomes = [
            {"request_id": a.headers["X-Request-Id"], "churned": i % 2 == 0, "observed_at": now}
            for i, a in enumerate(answers[:5])
        ]
        outcomes += [
            {"customer_id": f"cust{i}", "churned": True, "observed_at": now} for i in range(5, 10)
        ]
        outcomes += [{"customer_id": "nobody", "churned": False, "observed_at": now}]
        assert client.post("/outcomes", json=outcomes).status_code == 401
        wrong = client.post("/outcomes", json=outcomes, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"] == "unauthorized"
        first = client.post("/outcomes", json=outcomes, headers=AUTH)
        assert first.status_code == 200, first.text
        assert first.json() == {
            "received": 11,
            "new": 11,
            "duplicates": 0,
            "labelled": 10,
            "unmatched": 1,
            "new_unmatched": 1,
            "unmatched_keys": ["nobody"],
        }
        again = client.post("/outcomes", json=outcomes, headers=AUTH).json()
        assert (again["new"], again["duplicates"], again["labelled"]) == (0, 11, 0)
        bad = client.post(
            "/outcomes",
            json=[*outcomes, {"request_id": "x", "churned": "perhaps", "observed_at": now}],
            headers=AUTH,
        )
        assert bad.status_code == 422
        assert bad.json()["problems"] == [
            {"row": 11, "field": "churned", "message": "must be true or false, got 'perhaps'"}
        ]
        assert client.post("/outcomes", content=b"{", headers=AUTH).status_code == 400
    assert metric(url, "gateway_outcomes_labelled_total") == 10
    assert metric(url, "gateway_outcomes_unmatched_total") == 1
    store = SqliteStore(tmp_path / "data" / "predictions.sqlite3")
    assert store.counts()["outcomes"] == 11
    store.close()


def test_outcomes_are_off_without_a_token(logging_gateway: Callable[..., Process]) -> None:
    proc = logging_gateway(outcomes_token="")
    answer = httpx.post(f"http://{proc.address}/outcomes", json=[], headers=AUTH)
    assert answer.status_code == 404
    assert "GATEWAY_OUTCOMES_TOKEN" in answer.json()["detail"]


def load_in_background(
    url: str, seconds: float, concurrency: int = 8
) -> tuple[threading.Thread, list[Any]]:
    results: list[Any] = []

    def run() -> None:
        results.append(
            asyncio.run(drive(url, count=10**9, concurrency=concurrency, max_seconds=seconds))
        )

    thread = threading.Thread(target=run)
    thread.start()
    return thread, results


def test_a_locked_sqlite_store_under_load_fails_no_client_and_logging_resumes(
    logging_gateway: Callable[..., Process], tmp_path: Path
) -> None:
    proc = logging_gateway()
    url = f"http://{proc.address}"
    path = tmp_path / "data" / "predictions.sqlite3"
    wait_for(f"{url}/ready")
    thread, results = load_in_background(url, seconds=12)
    time.sleep(1.5)
    # Another process holds the database's write lock: every batch waits out busy_timeout (5 s)
    # and fails, so the queue fills and batches are lost.
    import sqlite3

    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    time.sleep(7)
    written_while_locked = metric(url, "gateway_prediction_log_answers_total")
    blocker.execute("ROLLBACK")
    blocker.close()
    thread.join(30)
    (result,) = results
    time.sleep(1)
    assert result.failed == 0, result.errors
    dropped = metric(url, "gateway_prediction_log_dropped_total", '{cause="store_error"}')
    assert dropped > 0
    written = metric(url, "gateway_prediction_log_answers_total")
    assert written > written_while_locked  # resumed
    print(f"\nsqlite locked 7 s under load: {result.sent} sent, 0 failed, {dropped:.0f} dropped")


def test_postgres_stopped_under_load_fails_no_client_and_logging_resumes(
    logging_gateway: Callable[..., Process],
    postgres_server: PostgresServer,  # noqa: F811
) -> None:
    database = postgres_server.new_database()
    proc = logging_gateway(prediction_log_url=database)
    url = f"http://{proc.address}"
    thread, results = load_in_background(url, seconds=10)
    time.sleep(2)
    postgres_server.stop()
    try:
        time.sleep(3)
        dropped = metric(url, "gateway_prediction_log_dropped_total", '{cause="store_error"}')
        written_while_down = metric(url, "gateway_prediction_log_answers_total")
    finally:
        postgres_server.start()
        postgres_server.wait_ready()
    thread.join(30)
    (result,) = results
    time.sleep(1)
    assert result.failed == 0, result.errors
    assert dropped > 0
    written = metric(url, "gateway_prediction_log_answers_total")
    assert written > written_while_down
    store = PostgresStore(database)
    assert store.counts()["predictions"] == written
    store.close()
    print(f"\npostgres stopped 3 s under load: {result.sent} sent, 0 failed, {dropped:.0f} dropped")


def test_a_killed_gateway_loses_at_most_its_last_flush_interval(
    logging_gateway: Callable[..., Process], tmp_path: Path
) -> None:
    proc = logging_gateway()
    url = f"http://{proc.address}"
    answered: list[tuple[float, str]] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=url, timeout=5) as http:
            while not stop.is_set():
                try:
                    answer = http.post("/predict", json=EXAMPLE_CUSTOMER)
                except httpx.HTTPError:
                    return
                if answer.status_code == 200:
                    answered.append((time.monotonic(), answer.headers["X-Request-Id"]))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    assert proc.popen is not None
    proc.popen.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    stop.set()
    for thread in threads:
        thread.join(10)
    proc.popen.wait(10)
    store = SqliteStore(tmp_path / "data" / "predictions.sqlite3")
    stored = {row[0] for row in all_rows(store)}
    store.close()
    lost = [(at, rid) for at, rid in answered if rid not in stored]
    oldest_lost = max((killed - at for at, _ in lost), default=0.0)
    print(
        f"\nSIGKILL after {len(answered)} answers: {len(lost)} not in the log, "
        f"the oldest answered {oldest_lost * 1000:.0f} ms before the kill "
        f"(flush interval {FLUSH_S * 1000:.0f} ms)"
    )
    assert len(answered) > 100
    # Everything answered more than one flush interval (plus a write's time) before the kill
    # is in the log.
    assert oldest_lost <= FLUSH_S + 0.15
