"""Replica hosts with many addresses: which hosts are looked up, the expansion into members,
the answers kept, and the rate-limited lookup on a failed connection."""

from __future__ import annotations

import asyncio

from gateway.dns import HostTable, UnknownHost, hosts_to_look_up, member_address
from gateway.pool import PoolLimits, ReplicaPool, ReplicaState
from routing_config import RoutingConfig


def config(*replicas: str) -> RoutingConfig:
    return RoutingConfig.model_validate(
        {
            "service": "s",
            "stable": "v1",
            "mode": "canary",
            "versions": {"v1": {"replicas": list(replicas)}},
            "canary": {"weights": {"v1": 100}},
        }
    )


def test_only_names_nobody_maps_are_looked_up() -> None:
    c = config("http://models-v1:8000", "http://10.0.0.9:8000", "http://[::1]:8000",
               "http://Mapped-A:8000", "https://secure.models/api")  # fmt: skip
    assert hosts_to_look_up(c, {"mapped-a:8000": "127.0.0.1:9101"}) == {
        "models-v1:8000": ("models-v1", 8000),
    }  # https is dialed by name: its certificate names the host, not an address


def test_a_member_dials_the_address_with_the_entrys_scheme_port_and_path() -> None:
    assert member_address("http://models-v1:8000/", "10.1.2.3") == "http://10.1.2.3:8000"
    assert member_address("https://m/api/", "fd00::5") == "https://[fd00::5]:443/api"


def test_an_entry_becomes_one_member_per_address_and_members_keep_their_health() -> None:
    c = config("http://models-v1:8000", "http://10.0.0.9:8000")
    answers: dict[str, tuple[str, ...]] = {"models-v1:8000": ("10.0.0.1", "10.0.0.2")}
    pool = ReplicaPool.build(c, {}, PoolLimits(), hosts=answers.get)
    addresses = [r.address for r in pool.by_version["v1"]]
    assert addresses == ["http://10.0.0.1:8000", "http://10.0.0.2:8000", "http://10.0.0.9:8000"]
    assert {r.url for r in pool.by_version["v1"]} == {"http://models-v1:8000",
                                                       "http://10.0.0.9:8000"}  # fmt: skip
    first = pool.by_version["v1"][0]
    first.state, first.inflight = ReplicaState.HEALTHY, 2
    # One address leaves, one joins: the one that stays is the same member, health and all.
    answers["models-v1:8000"] = ("10.0.0.3", "10.0.0.1")
    again = ReplicaPool.build(c, {}, PoolLimits(), previous=pool, hosts=answers.get)
    members = again.by_version["v1"]
    assert [r.address for r in members][:2] == ["http://10.0.0.3:8000", "http://10.0.0.1:8000"]
    assert members[1] is first and members[1].inflight == 2
    assert members[0].state is ReplicaState.UNKNOWN  # new: never routed to until checked


def test_a_host_with_no_answer_or_no_address_is_dialed_by_name() -> None:
    c = config("http://models-v1:8000")
    for answers in ({}, {"models-v1:8000": ()}):
        pool = ReplicaPool.build(c, {}, PoolLimits(), hosts=answers.get)
        assert [r.address for r in pool.by_version["v1"]] == ["http://models-v1:8000"]
    # The local stack's map wins over any lookup.
    mapped = ReplicaPool.build(
        c, {"models-v1:8000": "127.0.0.1:9101"}, PoolLimits(), hosts=lambda _: ("10.0.0.1",)
    )
    assert [r.address for r in mapped.by_version["v1"]] == ["http://127.0.0.1:9101"]


class FakeResolver:
    def __init__(self) -> None:
        self.answers: dict[str, list[str] | Exception] = {}
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        answer = self.answers[host]
        if isinstance(answer, Exception):
            raise answer
        return answer


def table(resolver: FakeResolver, now: list[float], changes: list[int]) -> HostTable:
    c = config("http://models-v1:8000")
    return HostTable(
        lambda: hosts_to_look_up(c, {}),
        lambda: changes.append(1),
        resolver=resolver,
        min_gap_s=1.0,
        clock=lambda: now[0],
    )


def test_answers_change_keep_and_empty() -> None:
    async def scenario() -> None:
        resolver, now, changes = FakeResolver(), [100.0], list[int]()
        hosts = table(resolver, now, changes)
        resolver.answers["models-v1"] = ["127.0.0.1", "127.0.0.2", "127.0.0.1"]
        assert await hosts.refresh() is True
        assert hosts.addresses("models-v1:8000") == ("127.0.0.1", "127.0.0.2")  # no duplicate
        assert await hosts.refresh() is False and len(changes) == 1  # same answer: no rebuild
        resolver.answers["models-v1"] = OSError("server failure")
        assert await hosts.refresh() is False
        assert hosts.addresses("models-v1:8000") == ("127.0.0.1", "127.0.0.2")  # last stands
        assert "server failure" in str(hosts.answers["models-v1:8000"].error)
        resolver.answers["models-v1"] = UnknownHost("no such name")
        assert await hosts.refresh() is True
        assert hosts.addresses("models-v1:8000") == ()

    asyncio.run(scenario())


def test_a_failed_connection_looks_the_host_up_at_most_once_per_gap() -> None:
    async def scenario() -> None:
        resolver, now, changes = FakeResolver(), [100.0], list[int]()
        hosts = table(resolver, now, changes)
        resolver.answers["models-v1"] = ["127.0.0.1"]
        await hosts.refresh()
        now[0] += 2.0
        for _ in range(50):  # a burst of failed requests
            hosts.connect_failed("models-v1:8000")
        hosts.connect_failed("unknown:8000")  # not resolved by the table: ignored
        await asyncio.sleep(0.01)
        assert resolver.calls == ["models-v1", "models-v1"]
        now[0] += 1.5
        hosts.connect_failed("models-v1:8000")
        await asyncio.sleep(0.01)
        assert len(resolver.calls) == 3
        await hosts.aclose()

    asyncio.run(scenario())
