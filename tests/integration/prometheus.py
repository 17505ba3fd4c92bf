"""A real Prometheus server (Debian's `prometheus` package, which `make test` installs) scraping
processes of a test on 127.0.0.1, and its HTTP API for instant queries."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from tests.integration.procs import free_port, wait_for

PROMETHEUS = shutil.which("prometheus")


class Prometheus:
    def __init__(self, targets: list[str], workdir: Path, interval_ms: int = 500) -> None:
        self.port = free_port()
        self.workdir = workdir
        config = workdir / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {
                        # Durations are whole numbers with a unit: "500ms", not "0.5s".
                        "scrape_interval": f"{interval_ms}ms",
                        "evaluation_interval": f"{interval_ms}ms",
                    },
                    "scrape_configs": [
                        {"job_name": "test", "static_configs": [{"targets": targets}]}
                    ],
                }
            )
        )
        self.argv = [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Prometheus:
        log = open(self.workdir / "prometheus.log", "wb")  # noqa: SIM115 - owned by the child
        self.popen = subprocess.Popen(self.argv, stdout=log, stderr=log)
        log.close()
        wait_for(f"{self.url}/-/ready", timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.popen is not None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()

    def query(self, promql: str) -> list[dict]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def scalar(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def wait_until(self, promql: str, expected: float, timeout: float = 30.0) -> None:
        """Until ``promql`` gives ``expected`` (the scrapes have caught up)."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            seen = self.scalar(promql)
            if seen == expected:
                return
            time.sleep(0.25)
        raise AssertionError(f"{promql} = {seen}, expected {expected}")
