"""Waiting for room at the in-flight cap (gateway/admission.py): hand-over, order, expiry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gateway.admission import Admission
from gateway.app import create_app
from gateway.pool import Replica, ReplicaState
from tests.gateway.fakes import FakeReplicas, settings_for, write_routing


def replica(version: str = "v1", inflight: int = 1) -> Replica:
    return Replica(version, "http://r", "http://r", state=ReplicaState.HEALTHY, inflight=inflight)


def test_a_request_that_ends_hands_its_room_to_the_oldest_waiter() -> None:
    async def scenario() -> None:
        admission = Admission(1.0)
        busy = replica()
        loop = asyncio.get_running_loop()
        first = loop.create_task(admission.wait("v1", loop.time() + 5))
        second = loop.create_task(admission.wait("v1", loop.time() + 5))
        await asyncio.sleep(0)
        assert admission.queued() == 2
        admission.release(busy)
        assert await first is busy
        assert busy.inflight == 1  # still counted: the waiter holds it now
        assert not second.done() and admission.queued() == 1
        admission.release(busy)
        assert await second is busy
        admission.release(busy)  # nobody waits: the room is freed
        assert busy.inflight == 0 and admission.queued() == 0

    asyncio.run(scenario())


def test_a_wait_ends_empty_handed_at_its_bound_and_leaves_the_queue() -> None:
    async def scenario() -> None:
        admission = Admission(0.05)
        loop = asyncio.get_running_loop()
        assert await admission.wait("v1", loop.time() + 0.02) is None
        assert admission.queued() == 0
        assert await admission.wait("v1", loop.time() - 1) is None  # no time left: no wait
        busy = replica()
        admission.release(busy)
        assert busy.inflight == 0

    asyncio.run(scenario())


def test_room_of_an_unhealthy_replica_is_freed_not_handed_over() -> None:
    async def scenario() -> None:
        admission = Admission(1.0)
        loop = asyncio.get_running_loop()
        waiting = loop.create_task(admission.wait("v1", loop.time() + 0.05))
        await asyncio.sleep(0)
        ejected = replica()
        ejected.state = ReplicaState.EJECTED
        admission.release(ejected)
        assert ejected.inflight == 0
        assert await waiting is None

    asyncio.run(scenario())


def test_a_cancelled_waiter_passes_on_a_room_it_was_handed() -> None:
    async def scenario() -> None:
        admission = Admission(1.0)
        busy = replica()
        loop = asyncio.get_running_loop()
        gone = loop.create_task(admission.wait("v1", loop.time() + 5))
        await asyncio.sleep(0)
        admission.release(busy)  # handed to `gone`, which is cancelled before it runs
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert busy.inflight == 0  # freed, not leaked
        also_gone = loop.create_task(admission.wait("v1", loop.time() + 5))
        await asyncio.sleep(0)
        also_gone.cancel()  # cancelled while still waiting
        with pytest.raises(asyncio.CancelledError):
            await also_gone
        assert admission.queued() == 0

    asyncio.run(scenario())


def test_a_request_at_the_cap_is_served_when_room_frees_within_the_wait(
    tmp_path: Path,
) -> None:
    fakes = FakeReplicas()
    routing = write_routing(tmp_path / "routing.yaml", stable_weight=100, canary_weight=0)
    settings = settings_for(routing, queue_timeout_s=5.0)
    with TestClient(create_app(settings, **fakes.transports())) as client:
        pool = client.app.state.gateway.snapshot.pool  # type: ignore[attr-defined]
        cap = pool.limits.max_inflight_per_replica
        replicas = pool.by_version["v2.3.1"]
        for one in replicas:
            one.inflight = cap
        admission = client.app.proxy.admission  # type: ignore[attr-defined]

        def free_one_when_waited() -> None:
            async def later() -> None:
                while admission.queued() == 0:
                    await asyncio.sleep(0.01)
                admission.release(replicas[0])

            client.portal.start_task_soon(later)  # type: ignore[union-attr]

        free_one_when_waited()
        response = client.post("/predict", json={"tenure": 3})
        assert response.status_code == 200, response.text
        assert sum(fakes.calls.values()) == 1
        assert replicas[0].inflight == cap - 1  # the request's room was freed when it ended
        for one in replicas:
            one.inflight = 0
