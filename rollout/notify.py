"""Notifications: each rollout decision POSTed to a webhook, never in the controller's way.

The controller hands every decision-log entry it writes, and every operator command it reads,
to ``Notifier.offer``; the entries worth telling someone (``worth_telling``: a start, an
advance, a failed check, a halt, a rollback, a promotion, a pause, a resume, a restart, an
abort) are queued and sent by a thread of their own as Slack-compatible JSON: ``{"text": ...}``
plus a ``rollout`` object with the entry's structured fields (action, versions, step, weight,
verdict, each check's numbers), which Slack ignores and other receivers can read.

Why a thread and a bounded queue: the controller's loop must keep its pace whatever the
receiver does (down, slow, answering 500s). ``offer`` only puts on the queue, without waiting;
a full queue drops the message, counted. A message is retried with exponential back-off
(``backoff_s`` doubled up to ``max_backoff_s``, ``attempts`` in all) on a connection error, a
timeout, a 5xx or a 429; a 4xx other than 429 is a mistake no retry mends and is dropped at
once. Drops are counted (``dropped``) and logged once, the first time, so a dead receiver
does not flood the controller's output; ``close`` says the total.

The URL carries its secret (a Slack webhook's path is the credential): it comes from the
environment (``STREAMFLOW_WEBHOOK_URL``) and is only ever shown as ``redact(url)``, scheme and
host.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

__all__ = [
    "WEBHOOK_ENV",
    "Notifier",
    "message_of",
    "redact",
    "worth_telling",
]

log = logging.getLogger("rollout.notify")

WEBHOOK_ENV = "STREAMFLOW_WEBHOOK_URL"

# Decisions always told; a hold only when its check failed (a passing or waiting hold is the
# loop's heartbeat, every check_every, and would bury the decisions).
TOLD = frozenset({"start", "advance", "rollback", "promote", "halt", "pause", "resume",
                  "restart", "abort"})  # fmt: skip
_RETRIED_STATUS = 429

Post = Callable[[str, dict[str, Any]], int]  # (url, JSON body) -> HTTP status; raises on no answer


def redact(url: str) -> str:
    """Scheme and host only: the path and query of a webhook URL are its secret."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def worth_telling(entry: Mapping[str, Any]) -> bool:
    action = entry.get("action")
    if action in TOLD:
        return True
    return action == "hold" and entry.get("verdict") == "FAIL"


def message_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The webhook body: one line of text for a chat, the entry's fields for a program."""
    action = str(entry.get("action", "?"))
    who = " (operator)" if entry.get("by") == "operator" else ""
    candidate = entry.get("candidate", "?")
    stable = entry.get("stable", "?")
    where = f" at {entry['weight']}%" if "weight" in entry else ""
    verdict = f" [{entry['verdict']}]" if "verdict" in entry else ""
    reason = str(entry.get("reason", "")).strip()
    text = f"streamflow rollout {candidate} vs {stable}: {action}{who}{where}{verdict}"
    if reason:
        text += f": {reason}"
    fields = {
        k: entry[k]
        for k in (
            "time",
            "by",
            "plan",
            "candidate",
            "stable",
            "step",
            "weight",
            "action",
            "verdict",
            "reason",
            "samples",
            "failures",
            "revision",
        )  # fmt: skip
        if k in entry
    }
    checks = entry.get("checks")
    if isinstance(checks, list):
        fields["checks"] = [
            {k: c.get(k) for k in ("name", "status", "value", "threshold")}
            for c in checks
            if isinstance(c, Mapping)
        ]
    return {"text": text, "rollout": fields}


class Notifier:
    """A bounded queue of messages and the one thread that sends them (module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        post: Post | None = None,
        max_queue: int = 100,
        attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 5.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"{WEBHOOK_ENV}: must be an http:// or https:// URL")
        self.url = url
        self.where = redact(url)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        # Back-off waits on the stop event, so close() never waits out a long back-off.
        self._sleep = sleep or self._wait
        self._client: httpx.Client | None = None
        if post is None:
            self._client = httpx.Client(timeout=timeout_s)
            post = self._post
        self._send = post
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self.sent = 0
        self.dropped = 0
        self._told_drop = False
        self._sending = False  # a message is being delivered (tried, or backing off)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="rollout-notify", daemon=True)
        self._thread.start()

    # --- the controller's side: never waits --------------------------------------------

    def offer(self, entry: Mapping[str, Any]) -> None:
        if not worth_telling(entry):
            return
        try:
            self._queue.put_nowait(message_of(entry))
        except queue.Full:
            self._drop("the queue is full (the receiver is slower than the decisions)")

    def close(self, timeout_s: float = 5.0) -> None:
        """Send what is queued for at most ``timeout_s``, then stop; what is still queued or
        being sent then is counted as dropped, and the total said."""
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(queue.Full):  # full: the join below bounds the wait anyway
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._closed = True
            self._stop.set()
            unsent = sum(1 for m in list(self._queue.queue) if m is not None)
            self.dropped += unsent + (1 if self._sending else 0)
        if self._client is not None and not self._thread.is_alive():
            self._client.close()  # a thread still in a POST (daemon) keeps its client
        if self.dropped:
            log.warning("notifications to %s: %d dropped in all", self.where, self.dropped)

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._queue.get()
            if message is None:
                return
            self._sending = True
            try:
                self._deliver(message)
            finally:
                self._sending = False

    def _deliver(self, message: dict[str, Any]) -> None:
        wait = self.backoff_s
        problem = ""
        for attempt in range(self.attempts):
            if self._stop.is_set():
                break
            try:
                status = self._send(self.url, message)
            except Exception as exc:  # no answer, or a bug: the thread outlives either
                problem = type(exc).__name__
            else:
                if 200 <= status < 300:
                    with self._lock:
                        self.sent += 1
                        self._sending = False  # not counted as dropped by a close now
                    return
                problem = f"answered {status}"
                if 400 <= status < 500 and status != _RETRIED_STATUS:
                    break  # the request itself is refused: sending it again cannot help
            if attempt + 1 < self.attempts:
                self._sleep(wait)
                wait = min(wait * 2, self.max_backoff_s)
        self._drop(f"{problem} (gave up)")

    def _drop(self, why: str) -> None:
        with self._lock:
            if self._closed:
                return  # close() has counted it already
            self.dropped += 1
            first = not self._told_drop
            self._told_drop = True
        if first:
            log.warning(
                "notification to %s dropped: %s; further drops are counted, not logged",
                self.where,
                why,
            )

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _post(self, url: str, body: dict[str, Any]) -> int:
        assert self._client is not None
        return self._client.post(url, json=body).status_code
