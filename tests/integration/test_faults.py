"""Fault injection with real processes: dead, restarted, mis-versioned and hung replicas, and a
gateway stopped under load. No client request that another replica could serve may fail."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from model_server.schemas import EXAMPLE_CUSTOMER
from tests.integration.conftest import resolve_map
from tests.integration.hung_replica import HeldReplica, HungReplica
from tests.integration.procs import (
    LoadResult,
    Process,
    drive,
    gateway,
    replica,
    routing_yaml,
    wait_for,
)

FAST = {
    "health_interval_s": 0.5,
    "health_timeout_s": 0.5,
    "read_timeout_s": 1.0,
    "eject_cooldown_s": 2.0,
}


def replica_states(url: str) -> dict[str, str]:
    return {r["url"]: r["state"] for r in httpx.get(f"{url}/routing").json()["replicas"]}


def wait_for_state(url: str, replica_url: str, state: str, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if replica_states(url).get(replica_url) == state:
            return time.monotonic() - start
        time.sleep(0.02)
    raise TimeoutError(f"{replica_url} not {state} after {timeout}s: {replica_states(url)}")


def restart(proc: Process, log_dir: Path) -> None:
    proc.stop()
    proc.start(log_dir)


@pytest.fixture
def fresh_replicas(replicas: dict[str, Process], log_dir: Path) -> dict[str, Process]:
    """The module's replicas, each restarted if an earlier test killed it."""
    for proc in replicas.values():
        if proc.popen is None or proc.popen.poll() is not None:
            proc.start(log_dir)
    for proc in replicas.values():
        wait_for(f"http://{proc.address}/ready")
    return replicas


async def load_while(url: str, action, *, count: int, **kw):  # noqa: ANN001, ANN003, ANN201
    """``count`` predictions, with ``action`` taken once a quarter of them have been sent; at
    least another quarter are sent after it, so it lands mid-load (checked, not assumed)."""
    progress = LoadResult()
    task = asyncio.create_task(drive(url, count=count, result=progress, **kw))
    await until(lambda: progress.sent >= count // 4 or task.done(), "a quarter of the load")
    assert not task.done(), "the load ended before the action"
    sent_before = progress.sent
    await asyncio.to_thread(action)
    result = await task
    assert result.sent - sent_before >= count // 4, (sent_before, result.sent)
    return result


def test_sigkill_one_stable_replica_fails_nothing_and_it_rejoins(
    start_gateway, fresh_replicas: dict[str, Process], log_dir: Path
) -> None:
    gw, _ = start_gateway(weights={"v2.3.1": 90, "v2.4.0": 10}, settings=FAST)
    url = f"http://{gw.address}"
    victim = fresh_replicas["model-v2-3-1-a"]
    result = asyncio.run(load_while(url, lambda: victim.signal(signal.SIGKILL), count=1500))
    print(f"\nkill one stable replica: sent {result.sent}, failed {result.failed}")
    assert result.sent >= 1000
    assert result.failed == 0, result.errors
    wait_for_state(url, "http://model-v2-3-1-a:8000", "unhealthy", timeout=3)

    victim.start(log_dir)
    wait_for(f"http://{victim.address}/ready")
    rejoin = wait_for_state(url, "http://model-v2-3-1-a:8000", "healthy", timeout=5)
    print(f"rejoined {rejoin:.2f}s after it was ready (health interval 0.5s)")
    assert rejoin <= FAST["health_interval_s"] + 0.5


def test_sigkill_every_canary_replica_falls_back_to_stable(
    start_gateway, fresh_replicas: dict[str, Process], log_dir: Path
) -> None:
    gw, _ = start_gateway(weights={"v2.3.1": 50, "v2.4.0": 50}, settings=FAST)
    url = f"http://{gw.address}"
    canary = fresh_replicas["model-v2-4-0-a"]
    result = asyncio.run(load_while(url, lambda: canary.signal(signal.SIGKILL), count=1500))
    print(
        f"\nkill every canary replica: sent {result.sent}, failed {result.failed}, "
        f"reasons {dict(result.by_reason)}"
    )
    assert result.failed == 0, result.errors
    assert result.by_reason["fallback"] > 0
    after = asyncio.run(drive(url, count=300))
    assert after.failed == 0
    assert after.by_version.keys() == {"v2.3.1"}
    assert after.by_reason["fallback"] == pytest.approx(150, abs=50)
    metrics = httpx.get(f"{url}/metrics").text
    assert 'gateway_fallbacks_total{cause="no_healthy_replica",from_version="v2.4.0"' in metrics

    canary.start(log_dir)
    wait_for(f"http://{canary.address}/ready")
    wait_for_state(url, "http://model-v2-4-0-a:8000", "healthy", timeout=5)
    back = asyncio.run(drive(url, count=400))
    assert back.failed == 0
    assert back.by_version["v2.4.0"] > 100


def test_sigterm_to_a_replica_under_load_fails_nothing(
    start_gateway, fresh_replicas: dict[str, Process]
) -> None:
    gw, _ = start_gateway(weights={"v2.3.1": 100, "v2.4.0": 0}, settings=FAST)
    victim = fresh_replicas["model-v2-3-1-b"]
    result = asyncio.run(
        load_while(f"http://{gw.address}", lambda: victim.signal(signal.SIGTERM), count=1200)
    )
    assert result.failed == 0, result.errors


def test_wrong_version_replica_is_never_routed_to(
    fresh_replicas: dict[str, Process], artifacts_dir: Path, tmp_path: Path, log_dir: Path
) -> None:
    # Listed under v2.3.1 in routing.yaml, but it was started with MODEL_VERSION=v2.4.0.
    imposter = replica("imposter", "v2.4.0", artifacts_dir).start(log_dir)
    hosts = {"v2.3.1": ["model-v2-3-1-a", "imposter"], "v2.4.0": ["model-v2-4-0-a"]}
    path = tmp_path / "routing.yaml"
    path.write_text(routing_yaml(hosts, weights={"v2.3.1": 100, "v2.4.0": 0}))
    resolve = {**resolve_map(fresh_replicas), "imposter:8000": imposter.address}
    gw = gateway(path, resolve, **FAST).start(log_dir)
    try:
        wait_for(f"http://{imposter.address}/ready")
        wait_for(f"http://{gw.address}/ready")
        url = f"http://{gw.address}"
        wait_for_state(url, "http://imposter:8000", "version_mismatch", timeout=3)
        result = asyncio.run(drive(url, count=1000))
        assert result.failed == 0
        assert result.by_version.keys() == {"v2.3.1"}
        served = httpx.get(f"http://{imposter.address}/metrics").text
        assert "model_predictions_total" not in served.replace(
            "# HELP model_predictions_total", ""
        ).replace("# TYPE model_predictions_total", "")
    finally:
        gw.stop()
        imposter.stop()


def test_hung_replica_costs_at_most_one_timeout_then_is_ejected(
    fresh_replicas: dict[str, Process], tmp_path: Path, log_dir: Path
) -> None:
    with HungReplica("v2.3.1") as hung:
        hosts = {"v2.3.1": ["model-v2-3-1-a", "hung"], "v2.4.0": ["model-v2-4-0-a"]}
        path = tmp_path / "routing.yaml"
        path.write_text(routing_yaml(hosts, weights={"v2.3.1": 100, "v2.4.0": 0}))
        resolve = {**resolve_map(fresh_replicas), "hung:8000": hung.address}
        # A cool-down longer than the run: on a busy machine 1,000 requests can outlast FAST's
        # 2 s, and the hung replica (whose /health passes) would be let back in mid-run.
        gw = gateway(path, resolve, **{**FAST, "eject_cooldown_s": 60.0}).start(log_dir)
        try:
            wait_for(f"http://{gw.address}/ready")
            url = f"http://{gw.address}"
            wait_for_state(url, "http://hung:8000", "healthy", timeout=3)
            started = time.monotonic()
            result = asyncio.run(drive(url, count=1000, concurrency=8))
            ejected = wait_for_state(url, "http://hung:8000", "ejected", timeout=1)
            print(
                f"\nhung replica: sent {result.sent}, failed {result.failed}, "
                f"predict calls it swallowed {hung.predict_calls}, "
                f"slowest {result.max_latency_s:.2f}s, run {time.monotonic() - started:.1f}s"
            )
            assert ejected is not None
            assert result.failed == 0, result.errors
            # One read timeout (1 s) at most, then the retry on a good replica.
            assert result.max_latency_s < 2 * FAST["read_timeout_s"]
            assert hung.predict_calls <= 8 + 3  # in flight when first seen + the ejection count
        finally:
            gw.stop()


def test_sigterm_to_the_gateway_finishes_in_flight_requests(
    fresh_replicas: dict[str, Process], tmp_path: Path, log_dir: Path
) -> None:
    """SIGTERM lands while twelve batches are in flight, and all twelve are answered.

    Shown, not assumed: the replica holds every prediction until released, the signal goes only
    once it holds all twelve and the gateway counts twelve in flight, and they are released only
    once the gateway has stopped listening, that is, while it drains.
    """
    with HeldReplica("v2.3.1") as held:
        hosts = {"v2.3.1": ["held"], "v2.4.0": ["model-v2-4-0-a"]}
        path = tmp_path / "routing.yaml"
        path.write_text(routing_yaml(hosts, weights={"v2.3.1": 100, "v2.4.0": 0}))
        resolve = {**resolve_map(fresh_replicas), "held:8000": held.address}
        # Held requests must not time out: what is tested is the drain, not the read timeout.
        gw = gateway(path, resolve, **{**FAST, "read_timeout_s": 30.0}).start(log_dir)
        try:
            wait_for(f"http://{gw.address}/ready")
            url = f"http://{gw.address}"
            wait_for_state(url, "http://held:8000", "healthy", timeout=3)
            statuses, bodies, held_at_signal, inflight_at_signal = asyncio.run(
                drain_scenario(url, gw, held)
            )
            assert held_at_signal == 12
            assert inflight_at_signal == 12
            assert statuses == [200] * 12
            assert bodies == [HeldReplica.ANSWER] * 12
            assert gw.popen is not None
            # uvicorn re-raises the signal once drained, so a clean stop shows as -SIGTERM.
            assert gw.popen.wait(15) in (0, -signal.SIGTERM)
        finally:
            gw.stop()


async def drain_scenario(
    url: str, gw: Process, held: HeldReplica
) -> tuple[list[int], list[object], int, int]:
    batch = {"customers": [EXAMPLE_CUSTOMER] * 1000}
    async with httpx.AsyncClient(timeout=30) as client:
        tasks = [
            asyncio.create_task(client.post(f"{url}/predict/batch", json=batch)) for _ in range(12)
        ]
        await until(lambda: held.held == 12, "the replica to hold all 12 batches")
        routing = (await client.get(f"{url}/routing")).json()
        inflight = sum(r["inflight"] for r in routing["replicas"] if r["url"] == "http://held:8000")
        gw.signal(signal.SIGTERM)
        port = int(url.rsplit(":", 1)[1])
        await until(lambda: not listening(port), "the gateway to stop listening after SIGTERM")
        # Draining now, and nothing answered yet: every batch was in flight at the signal.
        held_at_signal = held.held
        assert not any(task.done() for task in tasks)
        held.release()
        responses = await asyncio.gather(*tasks)
    return (
        [r.status_code for r in responses],
        [r.json() for r in responses],
        held_at_signal,
        inflight,
    )


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what}")
        await asyncio.sleep(0.01)


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return False
    return True
