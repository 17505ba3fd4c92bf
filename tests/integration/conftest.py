"""Fixtures that start real model replicas and gateways on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from model_server.mlserver_export import Export, export_version
from tests.integration.mlserver import MLServer
from tests.integration.procs import Process, gateway, replica, routing_yaml, wait_for

HOSTS = {"v2.3.1": ["model-v2-3-1-a", "model-v2-3-1-b"], "v2.4.0": ["model-v2-4-0-a"]}


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def replicas(artifacts_dir: Path, log_dir: Path) -> Iterator[dict[str, Process]]:
    """Three real model servers: two of v2.3.1, one of v2.4.0, keyed by host name."""
    started = {
        host: replica(host, version, artifacts_dir).start(log_dir)
        for version, hosts in HOSTS.items()
        for host in hosts
    }
    try:
        for proc in started.values():
            wait_for(f"http://{proc.address}/ready")
        yield started
    finally:
        for proc in started.values():
            proc.stop()


@pytest.fixture(scope="session")
def mlserver_export(artifacts_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Export:
    """v2.3.1 exported for MLServer (``streamflow export mlserver``), once per session."""
    return export_version(artifacts_dir, "v2.3.1", tmp_path_factory.mktemp("mlserver-export"))


@pytest.fixture(scope="module")
def mlserver(mlserver_export: Export, log_dir: Path) -> Iterator[MLServer]:
    """A real MLServer serving the export on free ports, ready; stopped after the module."""
    with MLServer(mlserver_export.directory, log_dir / "mlserver").running() as server:
        yield server


def resolve_map(replicas: dict[str, Process]) -> dict[str, str]:
    return {f"{host}:8000": proc.address for host, proc in replicas.items()}


@pytest.fixture
def start_gateway(
    replicas: dict[str, Process], tmp_path: Path, log_dir: Path
) -> Iterator[Callable[..., tuple[Process, Path]]]:
    """Start a gateway over ``replicas`` with a routing.yaml built from keyword arguments."""
    running: list[Process] = []

    def start(**routing: object) -> tuple[Process, Path]:
        settings = routing.pop("settings", {})
        path = tmp_path / "routing.yaml"
        path.write_text(routing_yaml(HOSTS, **routing))  # type: ignore[arg-type]
        proc = gateway(path, resolve_map(replicas), **settings).start(log_dir)  # type: ignore[arg-type]
        running.append(proc)
        wait_for(f"http://{proc.address}/ready", timeout=30)
        return proc, path

    yield start
    for proc in running:
        proc.stop()
