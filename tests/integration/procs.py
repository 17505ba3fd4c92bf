"""Real processes on 127.0.0.1 for integration tests: model replicas and the gateway."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from model_server.schemas import EXAMPLE_CUSTOMER

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMTOOL = shutil.which("promtool")  # make test installs it (Debian's prometheus)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60.0, status: int = 200) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=1.0)
            if response.status_code == status:
                return
            last = response.status_code
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} not answering {status} after {timeout}s (last: {last})")


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    popen: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @contextmanager
    def running(self, log_dir: Path) -> Iterator[Process]:
        """Started and answering /ready (a replica's or a gateway's), stopped on the way out:
        a module fixture's whole body."""
        self.start(log_dir)
        try:
            wait_for(f"http://{self.address}/ready")
            yield self
        finally:
            self.stop()

    def start(self, log_dir: Path) -> Process:
        if self.popen is not None:  # reap an earlier run (killed by a test) before replacing it
            self.stop()
        log = open(log_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.popen = subprocess.Popen(
            self.argv, env={**os.environ, **self.env}, stdout=log, stderr=log, cwd=REPO_ROOT
        )
        log.close()
        return self

    def signal(self, sig: int) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def replica(name: str, version: str, artifacts: Path, port: int | None = None) -> Process:
    port = port or free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "model_server.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--timeout-graceful-shutdown", "10",
        # As the local stack runs a replica: plain predictions answered by the protocol.
        "--no-access-log", "--http", "model_server.server:ReplicaProtocol",
    ]  # fmt: skip
    env = {"MODEL_VERSION": version, "MODEL_PATH": str(artifacts / version / "model.joblib")}
    return Process(name, argv, env, port)


def gateway(routing: Path, resolve: dict[str, str], **settings: object) -> Process:
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", "gateway.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
        "--timeout-graceful-shutdown", "10",
        # The server protocol `gateway serve` runs: predictions take its short-cut, so the
        # fault and routing tests cover the path production traffic takes.
        "--http", "gateway.server:GatewayProtocol",
    ]  # fmt: skip
    env = {"GATEWAY_ROUTING_FILE": str(routing), "GATEWAY_RESOLVE": json.dumps(resolve)}
    env.update({f"GATEWAY_{k.upper()}": str(v) for k, v in settings.items()})
    return Process("gateway", argv, env, port)


def routing_yaml(
    replicas: dict[str, list[str]],
    *,
    weights: dict[str, int],
    mode: str = "canary",
    live: str = "blue",
    stable: str = "v2.3.1",
    shadow: dict[str, object] | None = None,
) -> str:
    """A routing.yaml naming replicas by host (resolved to local ports by the gateway)."""
    lines = [f"service: streamflow-churn\nstable: {stable}\nmode: {mode}\nversions:"]
    for version, hosts in replicas.items():
        urls = ", ".join(f"http://{h}:8000" for h in hosts)
        lines.append(f"  {version}:\n    replicas: [{urls}]")
    weight_map = ", ".join(f"{v}: {w}" for v, w in weights.items())
    lines.append(f"canary:\n  weights: {{{weight_map}}}\n  sticky_header: X-Customer-Id")
    lines.append(f"blue_green: {{blue: v2.3.1, green: v2.4.0, live: {live}}}")
    lines.append("pinning: {header: X-Model-Version, allow: [v2.3.1, v2.4.0]}")
    if shadow is not None:
        lines.append(f"shadow: {{version: {shadow['version']}, percent: {shadow['percent']}}}")
    return "\n".join(lines) + "\n"


@dataclass
class LoadResult:
    sent: int = 0
    failed: int = 0
    by_version: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    mismatched_tags: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    max_latency_s: float = 0.0

    def share(self, version: str) -> float:
        return self.by_version[version] / max(1, self.sent - self.failed)


async def drive(
    url: str,
    *,
    count: int,
    concurrency: int = 16,
    max_seconds: float = 60.0,
    headers: dict[str, str] | None = None,
    stop: asyncio.Event | None = None,
    result: LoadResult | None = None,
) -> LoadResult:
    """Send up to ``count`` predictions (bounded in time too); count failures and versions.

    Counted into ``result`` when given, so the caller can watch the run's progress."""
    result = result if result is not None else LoadResult()
    deadline = time.monotonic() + max_seconds
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:

        async def worker() -> None:
            nonlocal next_index
            while next_index < count and time.monotonic() < deadline:
                if stop is not None and stop.is_set():
                    return
                next_index += 1
                result.sent += 1
                started = time.monotonic()
                try:
                    response = await client.post(
                        f"{url}/predict", json=EXAMPLE_CUSTOMER, headers=headers
                    )
                except httpx.HTTPError as exc:
                    result.failed += 1
                    result.errors[type(exc).__name__] += 1
                    continue
                result.max_latency_s = max(result.max_latency_s, time.monotonic() - started)
                if response.status_code != 200:
                    result.failed += 1
                    result.errors[f"{response.status_code} {response.text[:120]}"] += 1
                    continue
                version = response.headers["X-Model-Version"]
                result.by_version[version] += 1
                result.by_reason[response.headers["X-Route-Reason"]] += 1
                if response.json()["model_version"] != version:
                    result.mismatched_tags += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return result


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` on an exposition text."""
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
