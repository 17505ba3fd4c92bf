"""Processes the benchmark starts (nginx, model servers, gateways), and stops, every one."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


class StartError(Exception):
    """A process died or never became ready; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Proc:
    """One child in its own session, so stopping it also stops the workers it forked."""

    def __init__(
        self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                list(argv),
                env={**os.environ, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def wait_http(self, url: str, timeout: float = 90.0) -> None:
        """Until ``url`` answers 200, or fail naming the process and its log."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise StartError(
                    f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}"
                )
            try:
                response = httpx.get(url, timeout=1.0)
                if response.status_code == 200:
                    return
                last = response.status_code
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.1)
        raise StartError(f"{self.name}: {url} not ready after {timeout:.0f} s ({last})")

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        # Its own session: the group id is the child's pid, and holds only what it started.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait(5)


class Procs:
    """Every process of one run; ``close`` stops the ones still running, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.running: list[Proc] = []

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Proc:
        proc = Proc(name, argv, self.log_dir / f"{name}.log", env)
        self.running.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.running:
            self.running.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.running):
            proc.stop()
        self.running.clear()
