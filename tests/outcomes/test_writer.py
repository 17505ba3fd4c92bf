"""The writer: bounded, never blocking its caller, drops counted, resuming by itself."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import orjson

from outcomes.join import DEFAULT_WINDOW_S
from outcomes.records import (
    BATCH_MAGIC,
    Answered,
    Outcome,
    decode_answers,
    encode_answers,
    predictions_of,
)
from outcomes.store.base import PredictionStore, StoreError
from outcomes.store.sqlite import SqliteStore
from outcomes.writer import QUEUE_FULL, STORE_ERROR, PredictionWriter, WriterLimits

ANSWER = orjson.dumps(
    {"churn_probability": 0.42, "risk_tier": "medium", "top_reasons": [], "model_version": "v"}
)


def answered(request_id: str = "r", body: bytes = ANSWER, request: bytes | None = None) -> Answered:
    return Answered(1.0, request_id.encode(), b"cust", "v2.3.1", "sticky", b"rev", body, request)


class FakeStore(SqliteStore):
    """SQLite in memory that can be made slow or failing; closing it keeps its data (the
    writer closes a store that failed and opens it again)."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.failing = False
        self.gate = threading.Event()
        self.gate.set()

    def write_answers(self, answers: Sequence[Answered]) -> int:
        self.gate.wait()
        if self.failing:
            raise StoreError("disk full")
        return super().write_answers(answers)

    def close(self) -> None:
        pass


def test_an_answer_becomes_its_rows() -> None:
    single = predictions_of(answered())
    assert [(p.request_id, p.row, p.customer_key, p.churn_probability) for p in single] == [
        ("r", 0, "cust", 0.42)
    ]
    batch = orjson.dumps({"predictions": [orjson.loads(ANSWER)] * 3, "batch_size": 3})
    customers = orjson.dumps({"customers": [{"tenure": i} for i in range(3)]})
    rows = predictions_of(answered(body=batch, request=customers))
    assert [p.row for p in rows] == [0, 1, 2]
    assert [p.features for p in rows] == ['{"tenure":0}', '{"tenure":1}', '{"tenure":2}']


def test_writes_in_batches_from_its_thread() -> None:
    store = FakeStore()
    writer = PredictionWriter(lambda: store, WriterLimits(flush_interval_s=0.05))
    writer.start()
    for i in range(100):
        writer.offer(answered(f"r{i}"))
    assert writer.flush()
    assert store.counts()["predictions"] == 100
    assert writer.written == 100
    writer.close()


def test_a_slow_store_never_blocks_the_caller_and_the_overflow_is_counted() -> None:
    store = FakeStore()
    store.gate.clear()  # the store hangs
    writer = PredictionWriter(lambda: store, WriterLimits(max_queue=50, flush_interval_s=0.01))
    writer.start()
    writer.offer(answered("first"))
    time.sleep(0.1)  # the thread has taken "first" and hangs in the store
    start = time.perf_counter()
    for i in range(1000):
        writer.offer(answered(f"r{i}"))
    per_offer = (time.perf_counter() - start) / 1000
    assert per_offer < 50e-6  # microseconds, whatever the store does
    assert writer.dropped[QUEUE_FULL] == 950
    store.gate.set()
    assert writer.flush()
    assert store.counts()["predictions"] == 51
    writer.close()


def test_a_failing_store_loses_its_batches_counted_and_writing_resumes() -> None:
    store = FakeStore()
    store.failing = True
    writer = PredictionWriter(lambda: store, WriterLimits(flush_interval_s=0.01))
    writer.start()
    for i in range(10):
        writer.offer(answered(f"lost{i}"))
    assert writer.flush()
    assert writer.dropped[STORE_ERROR] == 10
    assert writer.last_error == "disk full"
    store.failing = False
    writer.offer(answered("back"))
    assert writer.flush()
    assert writer.last_error is None
    assert store.labelled is not None and store.counts()["predictions"] == 1
    writer.close()


def test_a_store_that_cannot_open_is_retried(tmp_path: Path) -> None:
    attempts = []

    def open_store() -> SqliteStore:
        attempts.append(1)
        if len(attempts) < 3:
            raise StoreError("unreachable")
        return SqliteStore(tmp_path / "p.sqlite3")

    writer = PredictionWriter(open_store, WriterLimits(flush_interval_s=0.01))
    writer.start()
    for round_ in range(3):
        writer.offer(answered(f"r{round_}"))
        writer.flush()
    assert writer.dropped[STORE_ERROR] == 2
    assert writer.written == 1
    writer.close()


def test_an_unparsable_answer_is_skipped_and_counted() -> None:
    store = FakeStore()
    writer = PredictionWriter(lambda: store)
    writer.offer(answered(body=b"not json"))
    writer.offer(answered())
    writer.flush()  # no thread: flushes in the caller; a quiet flush makes the rows too
    assert (writer.unparsable, writer.written) == (1, 2)
    assert store.counts()["predictions"] == 1


def test_close_writes_what_is_queued(tmp_path: Path) -> None:
    path = tmp_path / "p.sqlite3"
    writer = PredictionWriter(lambda: SqliteStore(path), WriterLimits(flush_interval_s=60))
    writer.start()
    for i in range(5):
        writer.offer(answered(f"r{i}"))
    writer.close()
    assert SqliteStore(path).counts()["predictions"] == 5


def test_drops_are_logged_once_per_interval(caplog: object) -> None:
    import logging

    records: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Catch()
    logging.getLogger("outcomes.writer").addHandler(handler)
    try:
        store = FakeStore()
        store.failing = True
        now = [100.0]
        writer = PredictionWriter(
            lambda: store, WriterLimits(drop_log_interval_s=10), clock=lambda: now[0]
        )
        for _ in range(5):
            writer.offer(answered())
            writer._flush_once()
            writer._log_drops()
        now[0] += 11
        writer.offer(answered())
        writer._flush_once()
        writer._log_drops()
    finally:
        logging.getLogger("outcomes.writer").removeHandler(handler)
    drops = [r for r in records if "dropped" in r.getMessage()]
    assert len(drops) == 2
    # The first drop at once, then the rest of the interval in one line.
    assert "and 1 answers (store error)" in drops[0].getMessage()
    assert "and 5 answers (store error)" in drops[1].getMessage()
    assert "disk full" in drops[0].getMessage()


def test_stored_batches_become_the_rows_python_makes(store: PredictionStore) -> None:
    """Answers stored raw, made into rows later: the same rows as predictions_of gives."""
    rows = [dict(orjson.loads(ANSWER), churn_probability=0.1 * i) for i in range(3)]
    batch = orjson.dumps({"predictions": rows, "batch_size": 3})
    customers = orjson.dumps({"customers": [{"tenure": i, "note": 'say "hi"'} for i in range(3)]})
    answers = [
        answered("single", request=orjson.dumps({"tenure": 9})),
        answered("batch", body=batch, request=customers),
        answered("plain"),
        Answered(2.5, b"odd", b'key "quoted" \\ \xe9', "v2.4.0", "shadow", b"rev", ANSWER),
        answered("not-a-prediction", body=b'{"error": "x"}'),
        answered("broken", body=b"{not json"),
    ]
    assert store.write_answers(answers[:3]) == 3
    assert store.write_answers(answers[3:]) == 3
    assert store.materialize(max_batches=1) == (5, 0)
    assert store.materialize() == (1, 2)
    assert store.materialize() == (0, 0)
    with store._transaction() as cursor:  # type: ignore[attr-defined]
        cursor.execute(
            "SELECT time, request_id, row_index, customer_key, version, assignment, "
            "routing_revision, churn_probability, risk_tier, features FROM predictions "
            "ORDER BY id"
        )
        stored = [tuple(row) for row in cursor.fetchall()]
    expected = []
    for a in answers[:4]:
        for p in predictions_of(a):
            expected.append(
                (
                    p.time, p.request_id, p.row, p.customer_key, p.version, p.assignment,
                    p.routing_revision, p.churn_probability, p.risk_tier, p.features,
                )
            )  # fmt: skip
    assert stored == expected


def test_reads_and_joins_make_the_rows_first(store: PredictionStore) -> None:
    store.write_answers([answered("r1")])
    assert store.counts()["predictions"] == 1
    store.write_answers([answered("r2")])
    tally = store.write_outcomes([Outcome(True, 5.0, request_id="r2")], window_s=DEFAULT_WINDOW_S)
    assert tally.labelled == 1


def test_a_stored_batch_gives_back_each_answer_and_old_batches_still_read() -> None:
    batch = orjson.dumps({"predictions": [orjson.loads(ANSWER)] * 2, "batch_size": 2})
    answers = [
        answered("r1"),
        Answered(2.5, b"r\xff2", None, "v2.4.0", "shadow", b"rev2", ANSWER, None),
        Answered(3.0, b"r3", b"", "v-\u00e9", "weighted", b"rev3", batch, b'{"customers":[]}'),
    ]
    blob = encode_answers(answers)
    assert blob.startswith(BATCH_MAGIC)
    got = list(decode_answers(blob))
    single = b'{"churn_probability":0.42,"risk_tier":"medium"}'  # what a single answer keeps
    assert got == [
        Answered(1.0, b"r1", b"cust", "v2.3.1", "sticky", b"rev", single, None),
        Answered(2.5, b"r\xff2", None, "v2.4.0", "shadow", b"rev2", single, None),
        Answered(3.0, b"r3", None, "v-\u00e9", "weighted", b"rev3", batch, b'{"customers":[]}'),
    ]
    # A batch stored in the first format (lengths, a JSON head, the answer), before an upgrade.
    head = orjson.dumps([4.0, "old", "cust", "v2.3.1", "pinned", "rev"])
    old = struct.pack("<III", len(head), len(ANSWER), 0) + head + ANSWER
    assert list(decode_answers(old)) == [
        Answered(4.0, b"old", b"cust", "v2.3.1", "pinned", b"rev", ANSWER, None)
    ]
