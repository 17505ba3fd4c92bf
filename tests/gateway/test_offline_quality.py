"""Each version's holdout AUC from its replicas' /metadata: fetched once, shown, warned about."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx

from gateway.health import HealthChecker
from gateway.offline_quality import OfflineQuality, candidate_of, facts_from_metadata, warning
from gateway.pool import PoolLimits
from gateway.state import GatewayState, Snapshot
from routing_config import load_config, parse_config
from tests.gateway.fakes import RESOLVE, VERSION_OF, write_routing

AUC = {"v2.3.1": 0.8375, "v2.4.0": 0.8373}


def metadata(version: str, auc: float, dataset: str = "synthetic-0fa7") -> dict[str, object]:
    return {
        "version": version,
        "sha256": f"{version}-sha-0123456789",
        "training_data": {"dataset_id": dataset, "rows": 20000},
        "metrics": {"holdout_auc": auc},
    }


def replicas(asked: Counter[str], *, answer_metadata: bool = True) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        version = VERSION_OF[f"{request.url.host}:{request.url.port}"]
        asked[request.url.path] += 1
        if request.url.path == "/health":
            return httpx.Response(200, json={"status": "healthy", "model_version": version})
        if request.url.path == "/metadata" and answer_metadata:
            return httpx.Response(200, json=metadata(version, AUC[version]))
        return httpx.Response(404)

    return httpx.MockTransport(handle)


def checked(tmp_path: Path, transport: httpx.MockTransport, rounds: int = 1) -> GatewayState:
    routing = write_routing(tmp_path / "routing.yaml")
    state = GatewayState(snapshot=Snapshot.build(load_config(routing), RESOLVE, PoolLimits()))

    async def run() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            checker = HealthChecker(lambda: state, client, 1.0)
            for _ in range(rounds):
                await checker.check_all()

    asyncio.run(run())
    return state


def test_routing_shows_each_versions_auc_and_warns_of_a_lower_candidate(tmp_path: Path) -> None:
    asked: Counter[str] = Counter()
    state = checked(tmp_path, replicas(asked), rounds=3)
    offline = state.describe()["offline_quality"]
    assert offline["versions"]["v2.3.1"]["holdout_auc"] == 0.8375  # type: ignore[index]
    assert offline["versions"]["v2.4.0"]["dataset_id"] == "synthetic-0fa7"  # type: ignore[index]
    assert offline["versions"]["v2.3.1"]["replicas"] == 2  # type: ignore[index]
    assert offline["warning"] == (  # type: ignore[index]
        "v2.4.0's holdout AUC 0.8373 is below stable v2.3.1's 0.8375 "
        "(offline, on each training data set's holdout)"
    )
    # Once per replica, not once per round.
    assert asked["/health"] == 9 and asked["/metadata"] == 3


def test_a_replica_without_metadata_is_asked_once_and_shown_unknown(tmp_path: Path) -> None:
    asked: Counter[str] = Counter()
    state = checked(tmp_path, replicas(asked, answer_metadata=False), rounds=3)
    offline = state.describe()["offline_quality"]
    assert offline == {"versions": {"v2.3.1": None, "v2.4.0": None}, "warning": None}
    assert asked["/metadata"] == 3


def test_a_replica_that_restarts_is_asked_again_and_gone_ones_are_dropped() -> None:
    offline = OfflineQuality()
    facts = facts_from_metadata(metadata("v2.4.0", 0.9))
    offline.record("v2.4.0", "http://a", facts)
    offline.record("v2.4.0", "http://b", facts)
    offline.forget("v2.4.0", "http://a")  # unhealthy: may come back with another artifact
    assert not offline.known("v2.4.0", "http://a") and offline.known("v2.4.0", "http://b")
    offline.keep_only([("v2.4.0", "http://c")])
    assert not offline.known("v2.4.0", "http://b")


BASE = """\
service: s
stable: v1
mode: canary
versions:
  v1: {replicas: [http://a:8000]}
  v2: {replicas: [http://b:8000]}
  v3: {replicas: [http://c:8000]}
canary:
  weights: {v1: 80, v2: 15, v3: 5}
"""


def test_the_candidate_is_the_plans_else_the_shadows_else_the_largest_weight() -> None:
    assert candidate_of(parse_config(BASE).config) == "v2"
    shadowed = BASE + "shadow: {version: v3, percent: 5}\n"
    assert candidate_of(parse_config(shadowed).config) == "v3"
    planned = shadowed + "rollout: {candidate: v2, steps: [100]}\n"
    assert candidate_of(parse_config(planned).config) == "v2"


def test_no_warning_when_the_candidate_scored_as_well_or_is_unknown() -> None:
    config = parse_config(BASE).config
    v1 = {"holdout_auc": 0.80, "dataset_id": "d"}
    assert warning(config, {"v1": v1, "v2": {"holdout_auc": 0.80, "dataset_id": "d"}}) is None
    assert warning(config, {"v1": v1, "v2": None}) is None
    lower = warning(config, {"v1": v1, "v2": {"holdout_auc": 0.79, "dataset_id": "e"}})
    assert lower is not None and "different data sets" in lower


def test_metadata_that_is_not_a_model_servers_gives_nothing() -> None:
    assert facts_from_metadata(["not", "a", "mapping"]) is None
    empty = facts_from_metadata({})
    assert empty is not None and empty.holdout_auc is None and empty.dataset_id is None
