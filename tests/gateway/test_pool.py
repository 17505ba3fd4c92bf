"""Replica selection, passive ejection with growing cool-down, active re-admission."""

from __future__ import annotations

from gateway.pool import PoolLimits, ReplicaPool, ReplicaState, resolve_address
from routing_config import parse_config
from tests.gateway.fakes import RESOLVE, ROUTING


def make_pool(**limits: float) -> ReplicaPool:
    config = parse_config(
        ROUTING.format(mode="canary", stable_weight=90, canary_weight=10, live="blue")
    ).config
    pool = ReplicaPool.build(config, RESOLVE, PoolLimits(**limits))  # type: ignore[arg-type]
    for replica in pool.replicas():
        pool.record_check(replica, ok=True, reported_version=replica.version, error=None, now=0)
    return pool


def test_resolve_maps_host_and_default_port() -> None:
    assert resolve_address("http://a:8000", {"a:8000": "127.0.0.1:9"}) == "http://127.0.0.1:9"
    assert resolve_address("http://a", {"a:80": "127.0.0.1:9"}) == "http://127.0.0.1:9"
    assert resolve_address("http://b:8000/", {}) == "http://b:8000"


def test_unknown_replicas_are_not_routable() -> None:
    config = parse_config(
        ROUTING.format(mode="canary", stable_weight=90, canary_weight=10, live="blue")
    ).config
    pool = ReplicaPool.build(config, RESOLVE, PoolLimits())
    assert pool.choose("v2.3.1") is None
    assert not pool.has_healthy("v2.3.1")


def test_choice_spreads_and_prefers_fewest_in_flight() -> None:
    pool = make_pool()
    a, b = pool.by_version["v2.3.1"]
    picks = [pool.choose("v2.3.1") for _ in range(10)]
    assert picks.count(a) == picks.count(b) == 5
    a.inflight = 3
    assert all(pool.choose("v2.3.1") is b for _ in range(4))
    assert pool.choose("v2.3.1", exclude=[b]) is a


def test_in_flight_cap() -> None:
    pool = make_pool(max_inflight_per_replica=2)
    a, b = pool.by_version["v2.3.1"]
    a.inflight = b.inflight = 2
    assert pool.choose("v2.3.1") is None


def test_consecutive_failures_eject_then_cooldown_then_readmit() -> None:
    pool = make_pool(eject_after_failures=3, eject_cooldown_s=5)
    a = pool.by_version["v2.3.1"][0]
    assert not pool.record_failure(a, "boom", now=10)
    assert not pool.record_failure(a, "boom", now=10)
    assert pool.record_failure(a, "boom", now=10)
    assert a.state is ReplicaState.EJECTED
    assert pool.choose("v2.3.1", exclude=[pool.by_version["v2.3.1"][1]]) is None
    # A passing health check inside the cool-down does not bring it back...
    pool.record_check(a, ok=True, reported_version="v2.3.1", error=None, now=12)
    assert a.state is ReplicaState.EJECTED
    # ...one after it does.
    pool.record_check(a, ok=True, reported_version="v2.3.1", error=None, now=15.1)
    assert a.state is ReplicaState.HEALTHY
    # Ejected again without a success in between: the cool-down doubles.
    for _ in range(3):
        pool.record_failure(a, "boom", now=20)
    assert a.ejected_until == 30
    pool.record_check(a, ok=True, reported_version="v2.3.1", error=None, now=31)
    pool.record_success(a)
    for _ in range(3):
        pool.record_failure(a, "boom", now=40)
    assert a.ejected_until == 45


def test_a_success_resets_the_failure_count() -> None:
    pool = make_pool(eject_after_failures=3)
    a = pool.by_version["v2.3.1"][0]
    pool.record_failure(a, "boom")
    pool.record_failure(a, "boom")
    pool.record_success(a)
    assert not pool.record_failure(a, "boom")
    assert a.state is ReplicaState.HEALTHY


def test_health_check_outcomes() -> None:
    pool = make_pool()
    a = pool.by_version["v2.3.1"][0]
    pool.record_check(a, ok=True, reported_version="v2.4.0", error=None)
    assert a.state is ReplicaState.VERSION_MISMATCH
    assert "v2.4.0" in (a.last_error or "")
    pool.record_check(a, ok=False, reported_version=None, error="/health answered 500")
    assert a.state is ReplicaState.UNHEALTHY
    pool.record_check(a, ok=True, reported_version="v2.3.1", error=None)
    assert a.state is ReplicaState.HEALTHY
