"""A version as a headless Service: one routing.yaml entry whose host resolves to several
replicas (real processes on 127.0.0.1, .2, .3 and .4, one port), through a resolver stand-in
(tests/integration/dns_gateway.py) in a real gateway process."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.integration.fake_replicas import Proc
from tests.integration.procs import free_port, wait_for

HOST = "models-v1.test"
REFRESH_S = 0.5


def replica_at(ip: str, port: int, name: str) -> Proc:
    argv = [sys.executable, "-m", "tests.integration.trivial_replica", str(port), "v1", name, ip]
    proc = Proc(name, argv, {}, port)
    return proc


def served_by(client: httpx.Client, n: int) -> tuple[Counter[str], list[int]]:
    names: Counter[str] = Counter()
    failures = []
    for _ in range(n):
        r = client.post("/predict", json={"x": 1})
        if r.status_code != 200:
            failures.append(r.status_code)
        else:
            names[r.json()["replica"]] += 1
    return names, failures


def entry_of(client: httpx.Client) -> dict[str, object]:
    entries = client.get("/routing").json()["entries"]
    assert len(entries) == 1
    found: dict[str, object] = entries[0]
    return found


def wait_until(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_one_entry_many_addresses(tmp_path: Path) -> None:
    port = free_port()
    hosts_file = tmp_path / "hosts.json"
    hosts_file.write_text(json.dumps({HOST: ["127.0.0.1", "127.0.0.2", "127.0.0.3"]}))
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        f"service: s\nstable: v1\nmode: canary\n"
        f"versions:\n  v1: {{replicas: [http://{HOST}:{port}]}}\n"
        f"canary:\n  weights: {{v1: 100}}\n"
    )
    replicas = {
        f"r{i}": replica_at(f"127.0.0.{i}", port, f"r{i}").start(tmp_path) for i in (1, 2, 3, 4)
    }
    gw_port = free_port()
    gateway = Proc(
        "gateway",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tests.integration.dns_gateway:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(gw_port),
            "--no-access-log",
            "--http",
            "gateway.server:GatewayProtocol",
        ],  # fmt: skip
        {
            "GATEWAY_ROUTING_FILE": str(routing),
            "GATEWAY_DNS_REFRESH_S": str(REFRESH_S),
            "GATEWAY_DNS_MIN_GAP_S": "0.2",
            "GATEWAY_HEALTH_INTERVAL_S": "0.3",
            "DNS_HOSTS_FILE": str(hosts_file),
        },
        gw_port,
    )
    try:
        for i in (1, 2, 3, 4):
            wait_for(f"http://127.0.0.{i}:{port}/health", timeout=15)
        gateway.start(tmp_path)
        wait_for(f"{gateway.url}/ready", timeout=30)
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            # Balanced over every address of the one entry.
            names, failures = served_by(client, 150)
            assert failures == []
            assert set(names) == {"r1", "r2", "r3"}, names
            assert min(names.values()) >= 30, names  # least-in-flight + round robin: ~50 each
            entry = entry_of(client)
            assert entry["url"] == f"http://{HOST}:{port}"
            assert [a["address"] for a in entry["addresses"]] == [  # type: ignore[attr-defined]
                f"http://127.0.0.{i}:{port}" for i in (1, 2, 3)
            ]
            assert all(a["healthy"] for a in entry["addresses"])  # type: ignore[attr-defined]
            assert entry["lookup"]["addresses"] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]  # type: ignore[index]

            # One replica killed (its pod gone, DNS not yet updated): no client sees it.
            replicas["r2"].popen.kill()  # type: ignore[union-attr]
            replicas["r2"].popen.wait(5)  # type: ignore[union-attr]
            names, failures = served_by(client, 150)
            assert failures == [], failures
            assert names["r2"] == 0 and set(names) == {"r1", "r3"}, names
            r2 = next(a for a in entry_of(client)["addresses"] if "127.0.0.2" in a["address"])  # type: ignore[attr-defined]
            assert not r2["healthy"]

            # The Service scales: the new pod's address joins after a refresh and takes traffic;
            # the dead one leaves the answer and the pool.
            hosts_file.write_text(json.dumps({HOST: ["127.0.0.1", "127.0.0.3", "127.0.0.4"]}))
            started = time.monotonic()
            wait_until(
                lambda: any(
                    "127.0.0.4" in a["address"] and a["healthy"]
                    for a in entry_of(client)["addresses"]  # type: ignore[attr-defined]
                )
            )
            joined = time.monotonic() - started
            names, failures = served_by(client, 150)
            assert failures == []
            assert set(names) == {"r1", "r3", "r4"} and min(names.values()) >= 30, names
            addresses = [a["address"] for a in entry_of(client)["addresses"]]  # type: ignore[attr-defined]
            assert not any("127.0.0.2" in a for a in addresses)
            print(f"\nnew address routable {joined:.2f}s after the DNS answer changed")

            # An address leaving the answer while requests are on it: they finish on it.
            slow: list[tuple[int, str]] = []

            def slow_request() -> None:
                with httpx.Client(base_url=gateway.url, timeout=10) as own:
                    r = own.post("/predict", json={"x": 1}, headers={"X-Slow": "1.5"})
                    slow.append((r.status_code, r.json().get("replica", "")))

            threads = [threading.Thread(target=slow_request) for _ in range(6)]
            for thread in threads:
                thread.start()
            time.sleep(0.5)  # all six in flight, two on each address
            hosts_file.write_text(json.dumps({HOST: ["127.0.0.1", "127.0.0.4"]}))
            wait_until(
                lambda: (
                    not any(
                        "127.0.0.3" in a["address"]
                        for a in entry_of(client)["addresses"]  # type: ignore[attr-defined]
                    )
                )
            )
            for thread in threads:
                thread.join(10)
            assert [status for status, _ in slow] == [200] * 6, slow
            assert "r3" in {name for _, name in slow}  # one finished on the address that left
            names, failures = served_by(client, 60)
            assert failures == [] and set(names) == {"r1", "r4"}, names

            # Labels stay the entry's: one series per state, whatever the addresses.
            metrics = client.get("/metrics").text
            healthy_lines = [
                line for line in metrics.splitlines()
                if line.startswith("gateway_replica_healthy{")
            ]  # fmt: skip
            assert healthy_lines and all(
                f'replica="http://{HOST}:{port}"' in x for x in healthy_lines
            )
            assert any(x.endswith(" 2.0") and 'state="healthy"' in x for x in healthy_lines)

            # The name resolves to nothing (every pod gone): no healthy replica.
            hosts_file.write_text(json.dumps({}))
            wait_until(lambda: client.get("/ready").status_code == 503)
            r = client.post("/predict", json={"x": 1})
            assert r.status_code == 503 and r.json()["error"]
    finally:
        gateway.stop()
        for proc in replicas.values():
            proc.stop()
