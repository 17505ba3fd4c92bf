"""Notifications: a real HTTP receiver on 127.0.0.1 gets each decision of a real controller
run; retries with back-off deliver once; a dead receiver never slows the controller."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rollout.controller import PROMOTED, ROLLED_BACK
from rollout.log import OPERATOR
from rollout.notify import Notifier, message_of, redact, worth_telling
from tests.rollout.test_controller import controller, setup

SECRET = "T000/B000/s3cr3t-token"


class Receiver:
    """A webhook receiver: answers each POST with the next status of ``statuses`` (200 once
    they run out) and keeps every body it got."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[dict[str, Any]] = []
        self.answered: list[int] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = outer.statuses.pop(0) if outer.statuses else 200
                outer.answered.append(status)
                if status == 200:
                    outer.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/{SECRET}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_receiver_gets_each_decision_of_a_rollout(tmp_path: Path, receiver: Receiver) -> None:
    path, log, source, clock = setup(tmp_path)
    notifier = Notifier(receiver.url, backoff_s=0.01)
    ctl = controller(path, log, source, clock)
    ctl.notify = notifier.offer
    assert ctl.run() == PROMOTED
    told = [e for e in log.read() if worth_telling(e)]
    wait_for(lambda: len(receiver.bodies) == len(told))
    notifier.close()
    assert [b["rollout"]["action"] for b in receiver.bodies] == [e["action"] for e in told]
    assert [b["rollout"]["action"] for b in receiver.bodies] == [
        "start", "advance", "advance", "promote"
    ]  # fmt: skip
    first_advance = receiver.bodies[1]
    assert first_advance["text"].startswith("streamflow rollout v2 vs v1: advance at 50% [PASS]")
    assert first_advance["rollout"]["checks"][0]["name"] == "error_rate"
    assert notifier.sent == 4 and notifier.dropped == 0


def test_failures_and_operator_commands_are_told(tmp_path: Path, receiver: Receiver) -> None:
    path, log, source, clock = setup(tmp_path, candidate_error=0.2)
    notifier = Notifier(receiver.url, backoff_s=0.01)
    ctl = controller(path, log, source, clock)
    ctl.notify = notifier.offer
    state = ctl.begin()
    log.append({"by": OPERATOR, "plan": ctl.plan.id, "action": "pause", "reason": "lunch"})
    assert ctl.check(state) is None and state.paused == "lunch"
    log.append({"by": OPERATOR, "plan": ctl.plan.id, "action": "resume"})
    outcome = None
    for _ in range(200):
        clock.sleep(1)
        outcome = ctl.check(state)
        if outcome is not None:
            break
    assert outcome == ROLLED_BACK
    wait_for(lambda: receiver.bodies and receiver.bodies[-1]["rollout"]["action"] == "rollback")
    notifier.close()
    said = [(b["rollout"]["action"], b["rollout"].get("by")) for b in receiver.bodies]
    assert said[:3] == [("start", "controller"), ("pause", OPERATOR), ("resume", OPERATOR)]
    assert ("hold", "controller") in said  # the first failed check, before the rollback
    holds = [b for b in receiver.bodies if b["rollout"]["action"] == "hold"]
    assert all(b["rollout"]["verdict"] == "FAIL" for b in holds)
    assert "(operator)" in receiver.bodies[1]["text"] and "lunch" in receiver.bodies[1]["text"]


def test_a_receiver_failing_twice_gets_the_message_once() -> None:
    flaky = Receiver([500, 503])
    try:
        notifier = Notifier(flaky.url, backoff_s=0.05)
        started = time.monotonic()
        notifier.offer({"action": "promote", "candidate": "v2", "stable": "v1"})
        wait_for(lambda: notifier.sent == 1)
        took = time.monotonic() - started
        notifier.close()
    finally:
        flaky.close()
    assert flaky.answered == [500, 503, 200]
    assert len(flaky.bodies) == 1 and flaky.bodies[0]["rollout"]["action"] == "promote"
    assert notifier.dropped == 0
    assert took >= 0.05 + 0.1  # backed off 0.05 s, then 0.1 s


def test_a_client_error_is_not_retried() -> None:
    refusing = Receiver([404])
    try:
        notifier = Notifier(refusing.url, backoff_s=0.01)
        notifier.offer({"action": "abort", "by": OPERATOR})
        wait_for(lambda: notifier.dropped == 1)
        notifier.close()
    finally:
        refusing.close()
    assert refusing.answered == [404]


def test_a_dead_receiver_never_delays_the_controller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Accepts connections (the kernel's backlog) and never answers: each POST hangs until
    # the notifier's timeout.
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(64)
    url = f"http://127.0.0.1:{dead.getsockname()[1]}/services/{SECRET}"
    try:
        path, log, source, clock = setup(tmp_path)
        started = time.perf_counter()
        assert controller(path, log, source, clock).run() == PROMOTED
        alone = time.perf_counter() - started

        again = tmp_path / "again"
        again.mkdir()
        path, log, source, clock = setup(again)
        notifier = Notifier(url, max_queue=1, timeout_s=2.0, backoff_s=0.5)
        offers: list[float] = []

        def timed_offer(entry: dict[str, Any]) -> None:
            t0 = time.perf_counter()
            notifier.offer(entry)
            offers.append(time.perf_counter() - t0)

        ctl = controller(path, log, source, clock)
        ctl.notify = timed_offer
        with caplog.at_level(logging.WARNING, logger="rollout.notify"):
            started = time.perf_counter()
            assert ctl.run() == PROMOTED
            notified = time.perf_counter() - started
            close_started = time.perf_counter()
            notifier.close(timeout_s=0.2)
            closing = time.perf_counter() - close_started
    finally:
        dead.close()
    print(
        f"\ncontroller run: {alone * 1000:.0f} ms alone, {notified * 1000:.0f} ms with a dead "
        f"receiver; slowest offer {max(offers) * 1e6:.0f} us over {len(offers)} entries; "
        f"close {closing * 1000:.0f} ms; dropped {notifier.dropped}"
    )
    assert max(offers) < 0.05  # never waits for the receiver (a POST hangs for 2 s)
    assert notified < alone + 1.0  # one hung POST alone would take 2 s
    assert closing < 2.0
    assert notifier.sent == 0 and notifier.dropped == 4  # start, 2 advances, promote
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 2  # the first drop, and the total at close
    assert SECRET not in caplog.text and "/services" not in caplog.text


def test_the_url_is_shown_without_its_secret() -> None:
    assert redact(f"https://hooks.slack.com/services/{SECRET}") == "https://hooks.slack.com/…"
    assert redact(f"http://127.0.0.1:9/x?token={SECRET}") == "http://127.0.0.1:9/…"
    with pytest.raises(ValueError, match="STREAMFLOW_WEBHOOK_URL"):
        Notifier("hooks.slack.com/services/x")


def test_what_is_worth_telling() -> None:
    assert worth_telling({"action": "advance"})
    assert worth_telling({"action": "hold", "verdict": "FAIL"})
    assert not worth_telling({"action": "hold", "verdict": "PASS"})
    assert not worth_telling({"action": "hold"})
    body = message_of({"action": "halt", "candidate": "v2", "stable": "v1", "weight": 50,
                       "verdict": "HALTED", "reason": "undecided"})  # fmt: skip
    assert body["text"] == "streamflow rollout v2 vs v1: halt at 50% [HALTED]: undecided"
    assert body["rollout"]["weight"] == 50
