"""What the local stack runs: routing.yaml + ports -> one ProcessSpec per process. No I/O here.

Whether a port is free is passed in, so the plan is a plain function that tests call with a fake.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from routing_config import RoutingConfig
from routing_config.replica_key import replica_address_key

__all__ = [
    "REPLICA_HOST",
    "GatewayPortTaken",
    "Plan",
    "PlanError",
    "PortCheck",
    "ProcessSpec",
    "build_plan",
]

# Replicas only ever talk to the gateway on this machine; they are never exposed further.
REPLICA_HOST = "127.0.0.1"
MAX_PORT = 65535
_DEFAULT_PORTS = {"http": 80, "https": 443}

# (host, port) -> True when a server could bind there now.
PortCheck = Callable[[str, int], bool]


class PlanError(Exception):
    """The stack cannot be laid out (e.g. the gateway port is taken); the message says why."""


class GatewayPortTaken(PlanError):
    """The gateway's port is in use; ``free_port`` is the next one that is not (None: none)."""

    def __init__(self, host: str, port: int, free_port: int | None) -> None:
        super().__init__(f"gateway port {host}:{port} is taken")
        self.host = host
        self.port = port
        self.free_port = free_port


@dataclass(frozen=True, slots=True)
class ProcessSpec:
    name: str  # replica "host:port" as in routing.yaml, or "gateway"
    argv: tuple[str, ...]
    # Added on top of the launcher's own environment, which children inherit (PATH, venv, ...).
    env: Mapping[str, str]
    address: str  # "host:port" the process listens on
    version: str | None  # the version a replica is pinned to; None for the gateway
    ready_path: str  # GET this until it answers 200 to know the process is serving

    @property
    def is_gateway(self) -> bool:
        return self.version is None


@dataclass(frozen=True, slots=True)
class Plan:
    replicas: tuple[ProcessSpec, ...]
    gateway: ProcessSpec | None
    # routing.yaml "host:port" -> local "127.0.0.1:port", as handed to the gateway.
    resolve: Mapping[str, str]
    # Versions served by another V2 server, reached where routing.yaml says; nothing started.
    external_versions: tuple[str, ...] = ()

    @property
    def processes(self) -> tuple[ProcessSpec, ...]:
        return self.replicas + ((self.gateway,) if self.gateway else ())


def build_plan(
    config: RoutingConfig,
    *,
    python: str,
    routing_path: Path,
    artifacts: Path,
    host: str,
    port: int,
    replica_base_port: int,
    is_free: PortCheck,
    with_gateway: bool = True,
) -> Plan:
    """One model-server per replica URL, on the first free ports from replica_base_port up,
    then (optionally) the gateway on host:port with the replica host names mapped to them.

    A ``protocol: v2`` version's replicas are another server's (MLServer, Triton): nothing is
    started for them and their host names are not mapped, so the gateway reaches them at the
    URLs routing.yaml gives (``external_versions`` names them)."""
    if with_gateway and not is_free(host, port):
        free = (p for p in range(port + 1, MAX_PORT + 1) if is_free(host, p))
        raise GatewayPortTaken(host, port, next(free, None))

    replicas: list[ProcessSpec] = []
    resolve: dict[str, str] = {}
    candidate = replica_base_port
    for version, spec in config.versions.items():
        if spec.protocol == "v2":
            continue
        for url in spec.replicas:
            candidate = _next_free_port(candidate, is_free, avoid=port if with_gateway else None)
            address = f"{REPLICA_HOST}:{candidate}"
            name = replica_address_key(url)
            resolve[name] = address
            replicas.append(_replica_spec(python, name, version, artifacts, candidate, address))
            candidate += 1

    gateway = None
    if with_gateway:
        gateway = ProcessSpec(
            name="gateway",
            argv=(python, "-m", "gateway", "serve", "--host", host, "--port", str(port)),
            env={
                "GATEWAY_ROUTING_FILE": str(routing_path),
                "GATEWAY_RESOLVE": json.dumps(resolve),
                # The prediction log on, in data/ beside routing.yaml (gitignored), unless the
                # operator's environment says otherwise.
                "GATEWAY_PREDICTION_LOG": os.environ.get("GATEWAY_PREDICTION_LOG", "true"),
                "GATEWAY_DATA_DIR": os.environ.get(
                    "GATEWAY_DATA_DIR", str(routing_path.parent / "data")
                ),
            },
            address=f"{host}:{port}",
            version=None,
            ready_path="/health",
        )
    external = tuple(name for name, spec in config.versions.items() if spec.protocol == "v2")
    return Plan(
        replicas=tuple(replicas), gateway=gateway, resolve=resolve, external_versions=external
    )


def _replica_spec(
    python: str, name: str, version: str, artifacts: Path, port: int, address: str
) -> ProcessSpec:
    argv = (
        python,
        "-m",
        "uvicorn",
        "--factory",
        "model_server.app:create_app",
        "--host",
        REPLICA_HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        # The shared HTTP/1.1 protocol, answering plain predictions itself (model_server/server.py).
        "--http",
        "model_server.server:ReplicaProtocol",
        # Below the launcher's 15 s stop grace, so in-flight requests finish before any SIGKILL.
        "--timeout-graceful-shutdown",
        "10",
    )
    env = {"MODEL_VERSION": version, "MODEL_PATH": str(artifacts / version / "model.joblib")}
    return ProcessSpec(name, argv, env, address, version, ready_path="/ready")


def _next_free_port(start: int, is_free: PortCheck, avoid: int | None) -> int:
    for candidate in range(start, MAX_PORT + 1):
        if candidate != avoid and is_free(REPLICA_HOST, candidate):
            return candidate
    raise PlanError(f"no free port from {start} up to {MAX_PORT} for the replicas")
