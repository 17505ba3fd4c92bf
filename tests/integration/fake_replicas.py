"""Tiny fake replicas (tests/integration/trivial_replica.py) as processes, for tests of the wire.

Each child runs in its own process group, so ``stop`` also ends anything it started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.integration.procs import REPO_ROOT, free_port, wait_for


class Proc:
    """A child process in its own process group; ``stop`` ends the whole group."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.port = port
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, log_dir: Path) -> Proc:
        self.log_path = log_dir / f"{self.name}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env={**base, **self.env},
                stdout=log,
                stderr=log,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL if it is still there after ``timeout`` s."""
        popen = self.popen
        if popen is None or popen.poll() is not None:
            return
        pgid = popen.pid  # a session leader: its pid is its group's id (not reaped yet here)
        for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            try:
                popen.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


def fake_replica(name: str, version: str) -> Proc:
    port = free_port()
    argv = [sys.executable, "-m", "tests.integration.trivial_replica", str(port), version, name]
    return Proc(name, argv, {}, port)


@contextlib.contextmanager
def running_fakes(
    versions: Mapping[str, Sequence[str]], log_dir: Path
) -> Iterator[dict[str, Proc]]:
    """A healthy fake replica per name in ``versions`` ({version: [names]}); stopped after."""
    started: dict[str, Proc] = {}
    try:
        for version, names in versions.items():
            for name in names:
                started[name] = fake_replica(name, version).start(log_dir)
        for proc in started.values():
            wait_for(f"{proc.url}/health", timeout=15)
        yield started
    finally:
        for proc in started.values():
            proc.stop()
