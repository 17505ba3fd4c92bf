"""``python -m gateway serve --workers 2``: every scrape of /metrics reports both workers' sum.

Each scrape reaches whichever worker accepts the connection; without sharing, the counts would
jump between the workers' own. Two tiny replicas (tests/integration/trivial_replica.py) answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics_share import SNAPSHOT_GLOB, decode
from gateway.stats import SAMPLE_INTERVAL_S
from tests.integration.fake_replicas import Proc, running_fakes
from tests.integration.procs import (
    PROMTOOL,
    drive,
    free_port,
    promtool_check,
    routing_yaml,
    wait_for,
)

VERSIONS = {"v2.3.1": ["fake-a"], "v2.4.0": ["fake-b"]}  # weights 100/0: all to fake-a
SNAPSHOT_WAIT_S = 3.0  # workers write every second; a scrape must be exact after this
MAX_ROUNDS = 10  # of 200 predictions, until both workers have answered some
T = TypeVar("T")


@pytest.fixture(scope="module")
def proc_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("multiworker-logs")


@pytest.fixture(scope="module")
def fakes(proc_log_dir: Path) -> Iterator[dict[str, Proc]]:
    with running_fakes(VERSIONS, proc_log_dir) as started:
        yield started


def serve_two_workers(routing: Path, fakes: dict[str, Proc], tmpdir: Path) -> Proc:
    port = free_port()
    argv = [
        sys.executable, "-m", "gateway", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
    ]  # fmt: skip
    env = {
        "GATEWAY_ROUTING_FILE": str(routing),
        "GATEWAY_RESOLVE": json.dumps({f"{n}:8000": p.address for n, p in fakes.items()}),
        "GATEWAY_HEALTH_INTERVAL_S": "0.5",
        "TMPDIR": str(tmpdir),  # where serve makes its private metrics directory
    }
    return Proc("gateway-2-workers", argv, env, port)


def until(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """``probe()`` once it is not None, polled every 0.1 s for at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.1)


def worker_counts(shared: Path) -> dict[int, float]:
    """Requests each worker's snapshot file counts, by the pid in its name."""
    counts = {}
    for path in shared.glob(SNAPSHOT_GLOB):
        samples = decode(path.read_bytes()).get("gateway_requests", [])
        counts[int(path.name.split("-")[1])] = sum(value for _, _, value in samples)
    return counts


def send(url: str, count: int) -> None:
    """``count`` predictions, 20 at a time over 4 fresh connections (any worker may accept them)."""
    for _ in range(count // 20):
        result = asyncio.run(drive(url, count=20, concurrency=4, max_seconds=20))
        assert result.sent == 20 and result.failed == 0, result.errors


def scrape(url: str) -> tuple[float, float, float]:
    """One scrape on a fresh connection: requests with status 200, histogram count and +Inf."""
    with httpx.Client(timeout=5) as client:  # a new connection: any worker may accept it
        text = client.get(f"{url}/metrics").text
    requests = count = inf = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "gateway_requests_total" and s.labels["status"] == "200":
                requests += s.value
            elif s.name == "gateway_request_duration_seconds_count":
                count += s.value
            elif s.name == "gateway_request_duration_seconds_bucket" and s.labels["le"] == "+Inf":
                inf += s.value
    return requests, count, inf


def test_every_scrape_reports_the_sum_over_the_workers(
    fakes: dict[str, Proc], tmp_path: Path, proc_log_dir: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_yaml(VERSIONS, weights={"v2.3.1": 100, "v2.4.0": 0}))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    gw = serve_two_workers(routing, fakes, tmpdir).start(proc_log_dir)
    try:
        wait_for(f"{gw.url}/ready", timeout=30)

        def both_workers() -> Path | None:
            dirs = list(tmpdir.glob("gateway-metrics-*"))
            return dirs[0] if len(dirs) == 1 and len(worker_counts(dirs[0])) == 2 else None

        shared = until(both_workers, 30, "two workers writing snapshots")

        def all_written(total: int) -> Callable[[], dict[int, float] | None]:
            def probe() -> dict[int, float] | None:
                counts = worker_counts(shared)
                return counts if sum(counts.values()) == total else None

            return probe

        # Which worker accepts a connection is the kernel's choice, often the same one many times
        # over: send until both have answered some (only then does a scrape need the sum).
        sent, rounds = 0, 0
        while True:
            send(gw.url, 200)
            sent, rounds = sent + 200, rounds + 1
            counts = until(all_written(sent), SNAPSHOT_WAIT_S, f"{sent} in the snapshot files")
            if all(n > 0 for n in counts.values()):
                break
            assert rounds < MAX_ROUNDS, f"one worker accepted every connection: {counts}"
        print(f"requests per worker: {counts}")
        for _ in range(6):
            assert scrape(gw.url) == (sent, sent, sent)
        if PROMTOOL is not None:
            checked = promtool_check(httpx.get(f"{gw.url}/metrics", timeout=5).text)
            assert checked.returncode == 0, checked.stdout + checked.stderr

        # A worker dies; uvicorn starts another. Its count stays in, and the newcomer adds to it.
        killed = min(counts)
        os.kill(killed, signal.SIGKILL)
        scrapes = []

        def restarted() -> bool | None:
            scrapes.append(scrape(gw.url)[0])
            return True if len(worker_counts(shared)) == 3 else None

        until(restarted, 30, "a restarted worker writing its snapshot")
        assert set(scrapes) == {sent}, scrapes
        send(gw.url, 100)
        sent += 100
        until(all_written(sent), SNAPSHOT_WAIT_S, f"{sent} in the snapshot files")
        for _ in range(6):
            assert scrape(gw.url) == (sent, sent, sent)

        assert gw.popen is not None
        gw.popen.send_signal(signal.SIGTERM)  # the parent; it stops the workers
        assert gw.popen.wait(15) == 0
    finally:
        gw.stop()
    assert not shared.exists()  # the private directory went with the run
    assert list(tmpdir.iterdir()) == []
    log = gw.log()
    assert "Traceback" not in log, log[-3000:]
    assert f"Child process [{killed}] died" in log


def written(shared: Path, total: int) -> Callable[[], dict[int, float] | None]:
    """A probe: every worker's count once the snapshot files add up to ``total``."""

    def probe() -> dict[int, float] | None:
        counts = worker_counts(shared)
        return counts if sum(counts.values()) == total else None

    return probe


def stats_requests(url: str) -> float:
    """Requests over the last minute by /stats, asked on a fresh connection (any worker)."""
    with httpx.Client(timeout=5) as client:
        rows = client.get(f"{url}/stats").json()["versions"]
    return sum(row["requests"] or 0 for row in rows)


def test_stats_reports_the_sum_over_the_workers(
    fakes: dict[str, Proc], tmp_path: Path, proc_log_dir: Path
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_yaml(VERSIONS, weights={"v2.3.1": 100, "v2.4.0": 0}))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    gw = serve_two_workers(routing, fakes, tmpdir).start(proc_log_dir)
    try:
        wait_for(f"{gw.url}/ready", timeout=30)
        shared = until(
            lambda: next(iter(tmpdir.glob("gateway-metrics-*")), None), 30, "a metrics directory"
        )
        sent = 0
        for _ in range(MAX_ROUNDS):
            send(gw.url, 100)
            sent += 100
            counts = until(written(shared, sent), SNAPSHOT_WAIT_S, f"{sent} in the files")
            if len(counts) == 2 and all(n > 0 for n in counts.values()):
                break
        assert len(counts) == 2 and all(counts.values()), f"one worker took it all: {counts}"
        # Each worker samples the summed files once a second: after that, every answer agrees.
        # The files already hold `sent` (waited for above) and one worker answers it; the other
        # cannot be asked for by name, so wait one sampling interval and half again: every worker
        # has sampled the files since. A sampler late by more fails this test; none passes it.
        until(lambda: True if stats_requests(gw.url) == sent else None, 5, f"/stats at {sent}")
        time.sleep(SAMPLE_INTERVAL_S * 1.5)
        assert [stats_requests(gw.url) for _ in range(6)] == [sent] * 6
    finally:
        gw.stop()
