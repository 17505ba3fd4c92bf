import asyncio
from types import SimpleNamespace

import orjson
import pytest

from gateway.errors import UpstreamFailure
from gateway.pool import PoolLimits, ReplicaPool, ReplicaState
from gateway.shadow.ledger import ShadowLedger
from gateway.shadow.mirror import Mirror
from gateway.shadow.plan import ShadowPlan
from routing_config import parse_config
from tests.gateway.fakes import DESIGN_EXAMPLE


def answer(p: float, tier: str) -> bytes:
    reasons = [
        {"feature": f, "value": 1, "shap_contribution": 0.1, "direction": "increases_risk"}
        for f in ("tenure", "contract_type", "monthly_charges")
    ]
    return orjson.dumps(
        {"churn_probability": p, "risk_tier": tier, "top_reasons": reasons, "model_version": "v"}
    )


class FakeUpstream:
    """Answers every mirror with ``reply`` (bytes, a status, or an exception to raise)."""

    def __init__(self, reply=None, status=200, delay=0.0):
        self.reply = answer(0.7, "high") if reply is None else reply
        self.status, self.delay = status, delay
        self.calls = []

    async def post(self, url, body, headers, timeout):
        self.calls.append((url, body, headers, timeout))
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(self.reply, Exception):
            raise self.reply
        return SimpleNamespace(status=self.status, head=b"", body=self.reply)

    async def aclose(self):
        pass


def healthy_pool():
    config = parse_config(DESIGN_EXAMPLE).config
    pool = ReplicaPool.build(config, {}, PoolLimits(), None)
    for replica in pool.replicas():
        replica.state = ReplicaState.HEALTHY
    return pool


PLAN = ShadowPlan.from_spec({"version": "v2.4.0", "percent": 100})


async def run(
    mirror: Mirror,
    times: int = 1,
    plan: ShadowPlan = PLAN,
    pool=None,
    primary="v2.3.1",
    sticky=None,
):
    pool = pool or healthy_pool()
    for i in range(times):
        mirror.offer(
            plan,
            pool,
            primary,
            "/predict",
            b"{}",
            [(b"x-request-id", b"r%d" % i)],
            sticky,
            b"r%d" % i,
            answer(0.5, "medium"),
            0.002,
        )
    await asyncio.gather(*mirror.tasks)
    return pool


def report(ledger):
    return ledger.pairs["v2.3.1"]


async def test_a_mirror_is_compared_and_carries_x_shadow_of():
    ledger = ShadowLedger()
    upstream = FakeUpstream()
    pool = await run(Mirror(upstream, ledger, max_inflight=8, timeout_s=1.5))
    tally = report(ledger)
    assert tally.outcomes["compared"] == 1
    assert tally.confusion[1][2] == 1  # client medium, shadow high
    url, body, headers, timeout = upstream.calls[0]
    assert url == "http://model-v2-4-0-a:8000/predict"
    assert (b"x-shadow-of", b"r0") in headers
    assert timeout == 1.5
    assert all(r.inflight == 0 for r in pool.replicas())


async def test_answers_from_the_shadow_version_are_not_mirrored():
    ledger = ShadowLedger()
    upstream = FakeUpstream()
    await run(Mirror(upstream, ledger, max_inflight=8, timeout_s=1), primary="v2.4.0")
    assert upstream.calls == [] and ledger.pairs == {}


@pytest.mark.parametrize(
    ("upstream", "outcome"),
    [
        (FakeUpstream(UpstreamFailure("timeout", "slow")), "timeout"),
        (FakeUpstream(UpstreamFailure("connect_error", "refused")), "connect_error"),
        (FakeUpstream(status=503), "status_5xx"),
        (FakeUpstream(status=422), "status_4xx"),
        (FakeUpstream(reply=b"{not json"), "bad_answer"),
    ],
)
async def test_failures_are_counted_by_cause_and_never_eject(upstream, outcome):
    ledger = ShadowLedger()
    pool = await run(Mirror(upstream, ledger, max_inflight=8, timeout_s=1), times=5)
    assert report(ledger).outcomes[outcome] == 5
    assert report(ledger).rows == 0
    assert all(
        r.state is ReplicaState.HEALTHY and r.consecutive_failures == 0 for r in pool.replicas()
    )


async def test_no_healthy_shadow_replica():
    ledger = ShadowLedger()
    pool = healthy_pool()
    for replica in pool.by_version["v2.4.0"]:
        replica.state = ReplicaState.UNHEALTHY
    upstream = FakeUpstream()
    await run(Mirror(upstream, ledger, max_inflight=8, timeout_s=1), pool=pool)
    assert report(ledger).outcomes["no_replica"] == 1 and upstream.calls == []


async def test_mirrors_beyond_the_cap_are_dropped_and_counted():
    ledger = ShadowLedger()
    upstream = FakeUpstream(delay=0.05)
    await run(Mirror(upstream, ledger, max_inflight=3, timeout_s=1), times=10)
    tally = report(ledger)
    assert len(upstream.calls) == 3
    assert tally.outcomes["dropped"] == 7 and tally.outcomes["compared"] == 3
    assert tally.mirrored == 3


def test_sticky_selection_is_stable_and_near_the_share():
    plan = ShadowPlan.from_spec({"version": "v2.4.0", "percent": 10})
    keys = [f"c-{i}".encode() for i in range(20000)]
    chosen = [k for k in keys if plan.selects(k, roll=0.99)]
    assert 0.09 < len(chosen) / len(keys) < 0.11
    # The roll does not matter once there is a key: the same customers every time.
    assert chosen == [k for k in keys if plan.selects(k, roll=0.0)]
    assert plan.selects(None, roll=0.05) and not plan.selects(None, roll=0.2)
    none = ShadowPlan.from_spec({"version": "v2.4.0", "percent": 0})
    assert not any(none.selects(k, 0.0) for k in keys[:100]) and not none.selects(None, 0.0)
    assert ShadowPlan.from_spec(None) is None


async def test_a_bug_in_comparison_is_contained(monkeypatch):
    ledger = ShadowLedger()
    mirror = Mirror(FakeUpstream(), ledger, max_inflight=8, timeout_s=1)

    def broken(*args):
        raise RuntimeError("bug")

    monkeypatch.setattr("gateway.shadow.mirror.compare_rows", broken)
    await run(mirror)
    assert report(ledger).outcomes["protocol_error"] == 1
