"""The prediction log's writer: asynchronous and bounded, so the store never touches a client.

``offer`` is all the request path calls: an append to a list under a lock (about a
microsecond), or a drop counted when the list holds its cap of answers or bytes. A thread of
its own wakes every flush interval, takes the whole list and stores it as one batch, unparsed,
in one transaction; the batches are made into rows when the gateway is quiet, or by the first
read that needs them (outcomes/store/base.py). A store that is slow lets the list fill up,
and what does not fit is dropped; a store that fails (unwritable, full, unreachable) loses
that batch, counted; the next flush tries again, so logging resumes by itself when the store
is back. Drops are logged once per interval, with their count and the last error, never once
per record.

What a killed process loses is what it had not flushed: at most one flush interval of answers
(plus the batch being written, if the kill lands inside the transaction).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from outcomes.records import Answered
from outcomes.store.base import PredictionStore, StoreError

__all__ = ["DROP_CAUSES", "PredictionWriter", "WriterLimits"]

log = logging.getLogger("outcomes.writer")

# Why a record was not written: the queue was at its cap, or the store failed its batch.
QUEUE_FULL = "queue_full"
STORE_ERROR = "store_error"
DROP_CAUSES = (QUEUE_FULL, STORE_ERROR)


@dataclass(frozen=True, slots=True)
class WriterLimits:
    max_queue: int = 50_000  # answers waiting to be written
    max_queue_bytes: int = 64 * 1024 * 1024  # their bodies' bytes
    flush_interval_s: float = 0.2
    drop_log_interval_s: float = 10.0
    # Retention, applied by the writer's thread every prune_interval_s (None: keep).
    max_age_s: float | None = None
    max_rows: int | None = None
    prune_interval_s: float = 60.0
    # A flush of at most this many answers is a quiet moment: then up to materialize_batches
    # stored batches are made into rows (outcomes/store/base.py).
    quiet_answers: int = 100
    materialize_batches: int = 20


class PredictionWriter:
    """Hands answers to the store from a thread; never blocks or fails its caller."""

    def __init__(
        self,
        open_store: Callable[[], PredictionStore],
        limits: WriterLimits = WriterLimits(),
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.open_store = open_store
        self.limits = limits
        self.clock = clock
        self.lock = threading.Lock()
        self.pending: list[Answered] = []
        self.pending_bytes = 0
        # Counters (read by the metrics; written under the lock or by the thread alone).
        self.written = 0  # answers stored
        self.dropped = {cause: 0 for cause in DROP_CAUSES}  # answers (a batch answer is one)
        self.unparsable = 0
        self.flushes = 0
        self.last_error: str | None = None
        self._store: PredictionStore | None = None
        self._wake = threading.Event()
        self._stopping = False
        self._flushed = threading.Condition()
        self._generation = 0  # flushes completed
        self._thread: threading.Thread | None = None
        self._dropped_logged = {cause: 0 for cause in DROP_CAUSES}
        self._last_drop_log = 0.0
        self._last_prune = 0.0

    # --- the request path ---

    def offer(self, answered: Answered) -> None:
        """Queue one answer; drop and count it when the queue is at its cap."""
        size = len(answered.body)
        with self.lock:
            if (
                len(self.pending) >= self.limits.max_queue
                or self.pending_bytes + size > self.limits.max_queue_bytes
            ):
                self.dropped[QUEUE_FULL] += 1
                return
            self.pending.append(answered)
            self.pending_bytes += size

    # --- lifecycle ---

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (within ``timeout_s``) and stop."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything queued now has been written (or dropped); False on timeout."""
        if self._thread is None:
            self._flush_once()
            return True
        with self._flushed:
            # The flush running now may have taken its batch before this call: wait for the
            # one after it.
            target = self._generation + 2
            self._wake.set()
            return self._flushed.wait_for(lambda: self._generation >= target, timeout_s)

    @property
    def queued(self) -> int:
        return len(self.pending)

    # --- the writer's thread ---

    def _run(self) -> None:
        while True:
            self._wake.wait(self.limits.flush_interval_s)
            self._wake.clear()
            stopping = self._stopping
            try:
                self._flush_once()
                self._maybe_prune()
            except Exception:  # the thread must outlive any bug, or logging stops for good
                log.exception("prediction log: unexpected error")
            self._log_drops()
            with self._flushed:
                self._generation += 1
                self._flushed.notify_all()
            if stopping:
                return

    def _flush_once(self) -> None:
        with self.lock:
            batch, self.pending = self.pending, []
            self.pending_bytes = 0
        if not batch:
            self.flushes += 1
            return
        try:
            store = self._open()
            store.write_answers(batch)
            if len(batch) <= self.limits.quiet_answers:
                # A quiet moment: make rows of stored batches now rather than when read.
                _, unparsable = store.materialize(self.limits.materialize_batches)
                self.unparsable += unparsable
        except StoreError as exc:
            self._fail(exc, len(batch))
        else:
            self.written += len(batch)
            if self.last_error is not None:
                log.info("prediction log: the store is back; writing again")
                self.last_error = None
        self.flushes += 1

    def _open(self) -> PredictionStore:
        if self._store is None:
            self._store = self.open_store()
        return self._store

    def _fail(self, exc: StoreError, answers: int) -> None:
        self.dropped[STORE_ERROR] += answers
        self.last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # Reopen next time: a broken connection, a replaced file, a server back up.
        if self._store is not None:
            self._store.close()
            self._store = None

    def _maybe_prune(self) -> None:
        limits = self.limits
        if limits.max_age_s is None and limits.max_rows is None:
            return
        now = self.clock()
        if now - self._last_prune < limits.prune_interval_s:
            return
        self._last_prune = now
        try:
            deleted = self._open().prune(max_age_s=limits.max_age_s, max_rows=limits.max_rows)
        except StoreError as exc:
            log.warning("prediction log: pruning failed: %s", exc)
            return
        if deleted:
            log.info("prediction log: pruned %d predictions past retention", deleted)

    def _log_drops(self) -> None:
        now = self.clock()
        if now - self._last_drop_log < self.limits.drop_log_interval_s:
            return
        new = {c: self.dropped[c] - self._dropped_logged[c] for c in DROP_CAUSES}
        if not any(new.values()):
            return
        self._last_drop_log = now
        self._dropped_logged = dict(self.dropped)
        because = f"; last store error: {self.last_error}" if self.last_error else ""
        log.warning(
            "prediction log: dropped %d answers (queue full) and %d answers (store error) "
            "since the last report%s",
            new[QUEUE_FULL],
            new[STORE_ERROR],
            because,
        )
