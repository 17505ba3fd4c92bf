"""The gateway's ConfigMap source (gateway/configmap_reload.py) against the API stand-in: each
document the watch sees goes through the same validate-then-swap as a file reload; /routing says
the source and its resourceVersion; SIGHUP lists again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from gateway.configmap_reload import ConfigMapReloader
from gateway.pool import PoolLimits
from gateway.reload import Reloader
from gateway.state import GatewayState, RoutingSource, Snapshot
from routing_config import parse_config
from routing_config.store.configmap_watch import ConfigMapWatch
from routing_config.store.kube_api import KubeConnection, KubeUnavailable
from routing_config.store.location import ConfigMapRef
from tests.gateway.fakes import RESOLVE, ROUTING
from tests.kube_standin import KubeStandIn

REF = ConfigMapRef("streamflow", "streamflow-routing")
Running = tuple[KubeStandIn, GatewayState, ConfigMapReloader]


def text(stable_weight: int = 90, canary_weight: int = 10, live: str = "blue") -> str:
    return ROUTING.format(
        mode="canary", stable_weight=stable_weight, canary_weight=canary_weight, live=live
    )


def build(loaded, previous=None):  # noqa: ANN001, ANN201 - mirrors Snapshot.build
    return Snapshot.build(loaded, RESOLVE, PoolLimits(), previous)


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def running(
    tmp_path: Path,
) -> AsyncIterator[tuple[KubeStandIn, GatewayState, ConfigMapReloader]]:
    standin = KubeStandIn(REF.namespace, REF.name, text()).start()
    state = GatewayState(snapshot=build(parse_config(text())))
    state.source = RoutingSource("configmap", str(REF), watch="starting")
    reloads: list[int] = []
    reloader = Reloader(Path(REF.location), state, build, on_success=lambda: reloads.append(1))
    watch = ConfigMapWatch(REF, lambda: KubeConnection(standin.url, None, None), backoff_s=0.05)
    follower = ConfigMapReloader(REF, reloader, watch)
    task = asyncio.create_task(follower.run())
    try:
        yield standin, state, follower
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        standin.stop()


async def test_changes_take_effect_and_routing_names_the_source(
    running: Running,
) -> None:
    standin, state, _ = running
    await until(lambda: state.source is not None and state.source.watch == "watching")
    first = state.snapshot
    version = await asyncio.to_thread(standin.put_text, text(75, 25))
    await until(lambda: state.snapshot is not first)
    assert state.snapshot.loaded.config.weights() == {"v2.3.1": 75, "v2.4.0": 25}
    source = state.describe()["source"]
    assert source == {
        "kind": "configmap",
        "location": "streamflow/streamflow-routing",
        "resource_version": version,
        "seen_resource_version": version,
        "watch": "watching",
    }


async def test_an_invalid_document_never_takes_effect(
    running: Running,
) -> None:
    standin, state, _ = running
    await until(lambda: state.source is not None and state.source.version is not None)
    good, good_version = state.snapshot, state.source.version if state.source else None
    bad = await asyncio.to_thread(standin.put_text, text(90, 8))
    await until(lambda: state.last_reload_error is not None)
    assert state.snapshot is good
    assert any("sum to 98, must be 100" in m for m in state.last_reload_error.messages)  # type: ignore[union-attr]
    assert state.source is not None
    assert (state.source.version, state.source.seen_version) == (good_version, bad)
    await asyncio.to_thread(standin.delete)
    await until(lambda: "deleted" in str(state.last_reload_error))
    assert state.snapshot is good  # still serving the last good config
    await asyncio.to_thread(standin.put_text, text(80, 20))
    await until(lambda: state.last_reload_error is None)
    assert state.snapshot.loaded.config.weights() == {"v2.3.1": 80, "v2.4.0": 20}


async def test_sighup_lists_again(
    running: Running,
) -> None:
    standin, state, follower = running
    await until(lambda: state.source is not None and state.source.watch == "watching")
    assert standin.counts["list"] == 1
    follower.request()
    await until(lambda: standin.counts["list"] == 2)
    await until(lambda: state.source is not None and state.source.watch == "watching")
    version = await asyncio.to_thread(standin.put_text, text(70, 30))
    await until(lambda: state.source is not None and state.source.version == version)


async def test_a_follower_that_ends_unexpectedly_is_started_again_after_a_pause() -> None:
    state = GatewayState(snapshot=build(parse_config(text())))
    reloader = Reloader(Path(REF.location), state, build)
    attempts: list[float] = []

    def unavailable() -> KubeConnection:
        attempts.append(asyncio.get_running_loop().time())
        raise KubeUnavailable("no API server here")

    follower = ConfigMapReloader(REF, reloader, ConfigMapWatch(REF, unavailable))
    follower.restart_pause_s = 0.1
    task = asyncio.create_task(follower.run())
    await asyncio.sleep(0.35)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert 2 <= len(attempts) <= 5  # started again, paced by the pause: no spin
    assert all(b - a >= 0.09 for a, b in zip(attempts, attempts[1:], strict=False))
