"""A real MLServer 1.7.1 (its scikit-learn runtime, in `make mlserver`'s venv) serving a version
exported by ``streamflow export mlserver``, on free ports of 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.procs import REPO_ROOT

MLSERVER = REPO_ROOT / ".venv-mlserver" / "bin" / "mlserver"
MLSERVER_PYTHON = MLSERVER.parent / "python"


def distinct_free_ports(count: int) -> list[int]:
    """``count`` free ports of 127.0.0.1, all different: each socket is held until all are
    bound (one at a time, the kernel may hand the same port out twice, and MLServer then waits
    for ever on the port its other server took)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def require_mlserver() -> Path:
    if not MLSERVER.exists():
        pytest.fail(f"{MLSERVER} is not installed: `make mlserver` (part of make test) provides it")
    return MLSERVER


class MLServer:
    """``mlserver start DIR`` in a session of its own: its inference worker (a child process)
    is stopped, or killed, with it."""

    def __init__(
        self, directory: Path, workdir: Path, *, name: str = "mlserver", workers: int = 1
    ) -> None:
        self.directory = directory
        self.workdir = workdir
        self.name = name
        self.port, grpc_port, metrics_port = distinct_free_ports(3)
        # Ports and workers from the environment: the exported settings.json leaves them out.
        self.env = {
            "MLSERVER_HOST": "127.0.0.1",
            "MLSERVER_HTTP_PORT": str(self.port),
            "MLSERVER_GRPC_PORT": str(grpc_port),
            "MLSERVER_METRICS_PORT": str(metrics_port),
            "MLSERVER_PARALLEL_WORKERS": str(workers),
        }
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> MLServer:
        if self.popen is not None:
            self.stop()
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by the child
        # Its working directory is its own: MLServer keeps its metrics' files there.
        self.popen = subprocess.Popen(
            [str(require_mlserver()), "start", str(self.directory)],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=log,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        return self

    def wait_ready(self, model: str = "churn", timeout: float = 120.0) -> MLServer:
        """Until the model answers ready; fails at once, with the log's tail, if it exits."""
        url = f"{self.url}/v2/models/{model}/ready"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.popen is not None
            if self.popen.poll() is not None:
                pytest.fail(f"MLServer exited {self.popen.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"MLServer not ready after {timeout}s:\n{self.log_tail()}")

    @contextlib.contextmanager
    def running(self) -> Iterator[MLServer]:
        """Started and ready, stopped on the way out: a module fixture's whole body."""
        try:
            yield self.start().wait_ready()
        finally:
            self.stop()

    def log_tail(self, lines: int = 30) -> str:
        path = self.workdir / f"{self.name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL to the server and its worker at once: a crash, not a shutdown."""
        self._signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout)
        # The worker too, should it outlive its parent.
        self._signal_group(signal.SIGKILL)
        if self.popen.poll() is None:
            self.popen.wait(10)
        self.popen = None

    def _signal_group(self, sig: int) -> None:
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):  # the group is gone already
            os.killpg(self.popen.pid, sig)  # the session it leads: its own process group
