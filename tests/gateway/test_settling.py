"""A revision settles once nothing an earlier one routed is still in flight: until then
gateway_config_settled_info names the earlier one, so a rollout window never begins while a
request routed by the previous step can still be counted in it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics
from gateway.pool import PoolLimits, ReplicaState
from gateway.proxy import Proxy
from gateway.reload import Reloader
from gateway.settling import Flight, settled_revision, still_flying
from gateway.shadow.ledger import ShadowLedger
from gateway.shadow.mirror import Mirror
from gateway.state import GatewayState, Snapshot
from gateway.wire import Headers, Message
from routing_config import load_config
from tests.gateway.fakes import RESOLVE, write_routing

ANSWER = b'{"churn_probability": 0.5, "risk_tier": "medium", "model_version": "v2.3.1"}'


class HeldUpstream:
    """Answers every POST once ``release`` is set: requests stay in flight until then."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0

    async def post(self, url: str, body: bytes, headers: Headers, timeout: float) -> Message:
        self.started += 1
        await self.release.wait()
        head = b"content-type: application/json\r\nx-model-version: v2.3.1\r\n"
        return Message(200, head, ANSWER)

    async def aclose(self) -> None:
        return None


def build(loaded, previous=None):  # noqa: ANN001, ANN201 - mirrors Snapshot.build
    snap = Snapshot.build(loaded, RESOLVE, PoolLimits(), previous)
    for replica in snap.pool.replicas():
        replica.state = ReplicaState.HEALTHY
    return snap


def settled(metrics: GatewayMetrics) -> list[str]:
    text = generate_latest(metrics.registry).decode()
    return [
        sample.labels["revision"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gateway_config_settled_info"
    ]


def test_flights_without_requests_are_not_waited_for() -> None:
    old, older = Flight("r1"), Flight("r0")
    assert still_flying((older,), old) == ()
    old.count = 1
    assert still_flying((older,), old) == (old,)
    assert settled_revision(Flight("r2"), (old,)) == "r1"
    old.count = 0
    assert settled_revision(Flight("r2"), (old,)) == "r2"


async def test_a_reload_settles_once_the_requests_it_outlived_are_counted(
    tmp_path: Path,
) -> None:
    routing = write_routing(tmp_path / "routing.yaml", stable_weight=100, canary_weight=0)
    state = GatewayState(snapshot=build(load_config(routing)))
    reloader = Reloader(routing, state, build)
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.watch(lambda: state)
    upstream = HeldUpstream()
    proxy = Proxy(state, upstream, metrics, max_body_bytes=1 << 20, request_budget_s=10.0)
    first = state.snapshot.loaded.revision
    assert settled(metrics) == [first]

    held = [asyncio.create_task(proxy.forward("/predict", [], b"{}", 0.0)) for _ in range(2)]
    while upstream.started < 2:
        await asyncio.sleep(0)
    write_routing(routing, stable_weight=90, canary_weight=10)
    assert reloader.check() is True
    second = state.snapshot.loaded.revision
    assert second != first
    # Loaded, but two requests the first revision routed are still to be counted.
    assert settled(metrics) == [first]
    write_routing(routing, stable_weight=80, canary_weight=20)
    assert reloader.check() is True
    assert settled(metrics) == [first]  # the oldest revision still in flight

    upstream.release.set()
    answers = await asyncio.gather(*held)
    assert [answer.status for answer in answers] == [200, 200]
    assert sum(metrics.answered.counts.values()) == 2
    assert settled(metrics) == [state.snapshot.loaded.revision]
    # Nothing of the settled flights is kept: the next snapshot waits for none of them.
    write_routing(routing, stable_weight=70, canary_weight=30)
    assert reloader.check() is True
    assert state.snapshot.earlier == ()


async def test_a_shadow_copy_keeps_its_revision_unsettled_until_it_is_counted(
    tmp_path: Path,
) -> None:
    routing = write_routing(tmp_path / "routing.yaml", stable_weight=100, canary_weight=0)
    routing.write_text(routing.read_text() + "shadow: {version: v2.4.0, percent: 100}\n")
    state = GatewayState(snapshot=build(load_config(routing)))
    reloader = Reloader(routing, state, build)
    metrics = GatewayMetrics(CollectorRegistry())
    metrics.watch(lambda: state)
    upstream = HeldUpstream()
    mirror = Mirror(upstream, ShadowLedger(), max_inflight=8, timeout_s=5.0)
    proxy = Proxy(
        state, upstream, metrics, max_body_bytes=1 << 20, request_budget_s=10.0, mirror=mirror
    )
    first = state.snapshot.loaded.revision
    upstream.release.set()
    answer = await proxy.forward("/predict", [], b"{}", 0.0)
    assert answer.status == 200
    upstream.release.clear()  # the client had its answer; its shadow copy (queued) is held
    assert len(mirror.tasks) == 1
    while upstream.started < 2:
        await asyncio.sleep(0)
    write_routing(routing, stable_weight=90, canary_weight=10)
    assert reloader.check() is True
    assert settled(metrics) == [first]  # the copy the first revision made is not counted yet
    upstream.release.set()
    await asyncio.gather(*mirror.tasks)
    tally = mirror.ledger.cumulative[("v2.3.1", "v2.4.0")]
    assert sum(tally.outcomes.values()) == 1  # counted by now
    assert settled(metrics) == [state.snapshot.loaded.revision]
