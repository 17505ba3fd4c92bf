"""The local stack: every replica in routing.yaml plus the gateway, as local processes.

    python -m stack [--routing routing.yaml] [--host 127.0.0.1] [--port 8080]
                    [--replica-base-port 9101] [--artifacts artifacts] [--no-gateway]
                    [--ready-timeout 120] [--status-file PATH]

It starts processes and owns none of their logic: model servers and the gateway are run exactly
as they would be anywhere else, configured through their own environment variables.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import httpx

from model_server.artifact import METADATA_FILE
from model_server.train import RECIPES, ensure_artifacts
from routing_config import ConfigError, load_config
from stack.plan import GatewayPortTaken, Plan, PlanError, ProcessSpec, build_plan
from stack.supervisor import StopRequest, Supervisor, sleep_unless_stopped

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PAYLOAD = REPO_ROOT / "examples" / "customer.json"
# Set by `make up`, so advice on what to type next names make's PORT= and not --port.
VIA_MAKE_ENV = "STACK_VIA_MAKE"


class ArtifactError(Exception):
    """A version in routing.yaml has no artifact and cannot be trained here."""


def say(message: str) -> None:
    # Flushed at once: children write to the same terminal, and lines must stay in order.
    print(f"[stack] {message}", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m stack",
        description="Run the gateway and one model server per routing.yaml replica locally.",
    )
    parser.add_argument("--routing", type=Path, default=Path("routing.yaml"))
    parser.add_argument("--host", default="127.0.0.1", help="gateway bind address")
    parser.add_argument("--port", type=int, default=8080, help="gateway port")
    parser.add_argument(
        "--replica-base-port",
        type=int,
        default=9101,
        help="first local port for replicas; taken ports are skipped",
    )
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts"))
    parser.add_argument(
        "--no-gateway", action="store_true", help="start only the model-server replicas"
    )
    parser.add_argument(
        "--ready-timeout", type=float, default=120.0, help="seconds to wait for readiness"
    )
    parser.add_argument(
        "--status-file", type=Path, help="keep a JSON file of process names, pids and addresses"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    # Replicas inherit it: compiled TreeSHAP kernels are kept there, so later starts take ~2 s.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO_ROOT / ".cache" / "numba"))
    routing_path = args.routing.absolute()
    try:
        config = load_config(routing_path).config
    except ConfigError as exc:
        print(f"[stack] {routing_path} is invalid:", file=sys.stderr)
        for message in exc.messages:
            print(f"  {message}", file=sys.stderr)
        return 1

    # Until children exist, a stop signal may simply unwind the stack: there is nothing to clean.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        ours = [name for name, spec in config.versions.items() if spec.protocol == "model_api"]
        build_artifacts(args.artifacts, ours)
        plan = build_plan(
            config,
            python=sys.executable,
            routing_path=routing_path,
            artifacts=args.artifacts.absolute(),
            host=args.host,
            port=args.port,
            replica_base_port=args.replica_base_port,
            is_free=port_is_free,
            with_gateway=not args.no_gateway,
        )
        # From here on a signal only sets a flag; the loops below notice it and stop children.
        stop = StopRequest()
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
    except KeyboardInterrupt:
        say("interrupted before anything was started")
        return 0
    except GatewayPortTaken as exc:
        say(f"error: {exc}; stop what uses it, or start the stack on another port:")
        if exc.free_port is not None:
            via_make = bool(os.environ.get(VIA_MAKE_ENV))
            say(f"  {rerun_command(argv, exc.free_port, via_make=via_make)}")
        return 1
    except (PlanError, ArtifactError) as exc:
        say(f"error: {exc}")
        return 1

    for version in plan.external_versions:
        urls = ", ".join(config.versions[version].replicas)
        say(f"{version}: protocol v2, not started here; the gateway reaches {urls} as written")
    supervisor = Supervisor(plan.processes, stop=stop, say=say, status_file=args.status_file)
    try:
        supervisor.start_all()
        started = time.monotonic()
        slow = wait_until_ready(supervisor, plan.processes, stop, args.ready_timeout)
        if plan.gateway is not None and not slow:
            remaining = args.ready_timeout - (time.monotonic() - started)
            slow = wait_until_routed(supervisor, probe_url(plan.gateway), stop, remaining)
        if not stop.requested:
            if slow:
                say(
                    f"not ready after {args.ready_timeout:g} s: {', '.join(slow)} "
                    "(see their output above); still supervising"
                )
            else:
                say(f"ready in {time.monotonic() - started:.1f} s")
            print_summary(plan, routing_path)
            supervisor.run()
        say(f"{_signal_name(stop.signum)} received")
    finally:
        supervisor.stop_all()
    say("stopped")
    return 0


def rerun_command(argv: Sequence[str], port: int, *, via_make: bool) -> str:
    """The command to type to start this same stack with the gateway on ``port``."""
    if via_make:
        return f"make up PORT={port}"
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--port":
            skip = True
        elif not arg.startswith("--port="):
            kept.append(arg)
    python = _display_path(Path(sys.executable))
    return shlex.join([str(python), "-m", "stack", *kept, "--port", str(port)])


def build_artifacts(artifacts: Path, versions: list[str]) -> None:
    """Train the versions whose artifacts are missing; each takes a few seconds."""
    for version in versions:
        if (artifacts / version / METADATA_FILE).exists():
            continue
        if version not in RECIPES:
            raise ArtifactError(
                f"no artifact for {version} in {artifacts / version} and no recipe to train it "
                f"(known: {', '.join(sorted(RECIPES))})"
            )
        say(f"{version}: training model artifact into {artifacts / version} ...")
        started = time.monotonic()
        ensure_artifacts(artifacts, [version])
        say(f"{version}: done in {time.monotonic() - started:.1f} s")


def port_is_free(host: str, port: int) -> bool:
    """True when a server could bind host:port now (uvicorn also sets SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_until_ready(
    supervisor: Supervisor, specs: Sequence[ProcessSpec], stop: StopRequest, timeout_s: float
) -> list[str]:
    """Poll each process's ready path until it answers 200; return the names still not ready.

    Supervision goes on meanwhile, so a replica that crashes on start is restarted, not waited on.
    """
    pending = {spec.name: spec for spec in specs}
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=1.0) as client:
        while pending and not stop.requested and time.monotonic() < deadline:
            supervisor.check()
            for name, spec in list(pending.items()):
                try:
                    answered = client.get(probe_url(spec) + spec.ready_path).status_code == 200
                except httpx.HTTPError:
                    answered = False
                if answered:
                    del pending[name]
            sleep_unless_stopped(0.25, stop)
    return list(pending)


def wait_until_routed(
    supervisor: Supervisor, gateway_url: str, stop: StopRequest, timeout_s: float
) -> list[str]:
    """Poll the gateway's /routing until it has marked every replica healthy; return the
    replicas it has not (a replica answering /ready is not yet one the gateway routes to: its
    health check runs every second).
    """
    deadline = time.monotonic() + timeout_s
    pending = ["gateway /routing"]
    with httpx.Client(timeout=1.0) as client:
        while not stop.requested and time.monotonic() < deadline:
            supervisor.check()
            try:
                replicas = client.get(gateway_url + "/routing").json().get("replicas")
            except (httpx.HTTPError, ValueError, AttributeError):
                replicas = None
            if isinstance(replicas, list):
                pending = [
                    f"{r.get('url')} (gateway: {r.get('state')})"
                    for r in replicas
                    if isinstance(r, dict) and r.get("healthy") is not True
                ]
                if not pending:
                    return []
            sleep_unless_stopped(0.1, stop)
    return pending


def probe_url(spec: ProcessSpec) -> str:
    host, _, port = spec.address.rpartition(":")
    # A wildcard bind is reachable on loopback; that is where the launcher checks it.
    if host in ("0.0.0.0", "::", "[::]", ""):
        host = "127.0.0.1"
    return http_url(host, int(port))


def http_url(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"http://{host}:{port}"


def print_summary(plan: Plan, routing_path: Path) -> None:
    width = max([len("replica"), *(len(spec.name) for spec in plan.replicas)])
    lines = [f"  {'replica':<{width}}    {'local address':<16}  version"]
    for spec in plan.replicas:
        lines.append(f"  {spec.name:<{width}} -> {spec.address:<16}  {spec.version}")
    payload = _display_path(EXAMPLE_PAYLOAD)
    if plan.gateway is not None:
        url = probe_url(plan.gateway)
        lines.append(f"  gateway: {url}  (routing: {routing_path})")
        lines.append("")
        lines.append(
            f"  try: curl -s -X POST {url}/predict -H 'content-type: application/json' "
            f"-d @{payload} -i"
        )
    else:
        first = plan.replicas[0]
        lines.append("  gateway: not started (--no-gateway)")
        lines.append("")
        lines.append(
            f"  try: curl -s -X POST {probe_url(first)}/predict "
            f"-H 'content-type: application/json' -d @{payload} -i"
        )
    lines.append("  Ctrl-C stops every process.")
    print("\n".join(lines), flush=True)


def _display_path(path: Path) -> Path:
    # Short relative path when run from the repo, as in the docs; absolute otherwise.
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _signal_name(signum: int | None) -> str:
    return signal.Signals(signum).name if signum is not None else "stop"
