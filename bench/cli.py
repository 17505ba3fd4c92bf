"""Run the whole benchmark: start everything, drive it with wrk, print the table, write JSON."""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench import report
from bench.nginx import Backend, Peer, nginx_argv, render_config
from bench.procs import REPO_ROOT, Proc, Procs, StartError, free_port
from bench.tools import ToolError, Tools, ensure_tools
from bench.wrk import WrkError, WrkResult, combine, run_wrk, write_script
from model_server.train import ensure_artifacts
from routing_config import load_config

ARTIFACTS = REPO_ROOT / "artifacts"
RESULTS = REPO_ROOT / "bench" / "results"
EXAMPLE = REPO_ROOT / "examples" / "customer.json"
STICKY_HEADER = "X-Customer-Id"
WEIGHTS = {"v2.3.1": 90, "v2.4.0": 10}
# The replica names of the repo's routing.yaml; each is mapped to a local port per backend kind.
REPLICAS = {"v2.3.1": ["model-v2-3-1-a", "model-v2-3-1-b"], "v2.4.0": ["model-v2-4-0-a"]}
STABLE = "v2.3.1"
PIN_HEADER = "X-Model-Version"
SHADOW_PERCENT = 10  # report.SHADOW_TARGET: the real-replica gateway with this share copied


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def routing_yaml(shadow_percent: int | None = None) -> str:
    lines = [
        "service: streamflow-bench",
        f"stable: {STABLE}",
        "mode: canary",
        "versions:",
    ]
    for version, hosts in REPLICAS.items():
        urls = ", ".join(f"http://{host}:8000" for host in hosts)
        lines.append(f"  {version}: {{replicas: [{urls}]}}")
    weights = ", ".join(f"{v}: {w}" for v, w in WEIGHTS.items())
    lines += [
        f"canary: {{weights: {{{weights}}}, sticky_header: {STICKY_HEADER}}}",
        "pinning: {header: X-Model-Version, allow: [v2.3.1, v2.4.0]}",
    ]
    if shadow_percent is not None:
        lines.append(f"shadow: {{version: v2.4.0, percent: {shadow_percent}}}")
    return "\n".join(lines) + "\n"


@dataclass
class Measurement:
    backend: str  # trivial | real
    target: str  # direct | nginx | gateway
    workers: int | None  # gateway worker processes
    result: WrkResult  # medians over the rounds
    rounds_rps: list[float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "target": self.target,
            "workers": self.workers,
            **self.result.as_dict(),
            "rounds_rps": self.rounds_rps,
        }


@dataclass(frozen=True)
class Target:
    name: str
    workers: int | None
    url: str
    session: int | None = None  # the server's session, for its CPU per request (bench/cpu.py)
    script: Path | None = None  # wrk's script when not the run's /predict one

    @property
    def label(self) -> str:
        return self.name if self.workers is None else f"{self.name} x{self.workers}"


@dataclass
class Run:
    args: argparse.Namespace
    tools: Tools
    tmp: Path
    procs: Procs
    routing: Path
    routing_shadow: Path  # the same, with shadow traffic on
    revision: str  # of the routing file: nginx tags with it as the gateway does
    script: Path
    measurements: list[Measurement] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    versus: dict[str, Any] | None = None
    overload: dict[str, Any] | None = None
    v2_batch: dict[str, Any] | None = None

    def wrk(
        self,
        url: str,
        connections: int,
        seconds: float,
        timeout_s: float = 5.0,
        session: int | None = None,
        script: Path | None = None,
    ) -> WrkResult:
        threads = 1 if connections == 1 else self.args.wrk_threads
        return run_wrk(
            self.tools.wrk,
            script or self.script,
            url,
            connections=connections,
            duration_s=seconds,
            threads=threads,
            timeout_s=timeout_s,
            session=session,
        )

    def drive(self, backend: str, targets: list[Target]) -> None:
        """Every target at each connection count, in interleaved rounds.

        Other work on the machine comes and goes; taking each target's rounds in turn with the
        others' exposes all of them to the same conditions, and the median drops a bad round.
        """
        rounds = self.args.rounds
        seconds = max(1.0, self.args.duration / rounds)
        for connections in self.args.connections:
            if self.args.warmup > 0:
                for target in targets:
                    self.wrk(target.url, connections, self.args.warmup, script=target.script)
            results: dict[Target, list[WrkResult]] = {target: [] for target in targets}
            for _ in range(rounds):
                for target in targets:
                    results[target].append(
                        self.wrk(
                            target.url,
                            connections,
                            seconds,
                            session=target.session,
                            script=target.script,
                        )
                    )
            for target in targets:
                result = combine(results[target])
                rps = [r.rps for r in results[target]]
                self.measurements.append(
                    Measurement(backend, target.name, target.workers, result, rps)
                )
                cpu = result.cpu_us_per_request
                say(
                    f"{backend:<7} {target.label:<12} c{connections:<3} {result.rps:>9.0f} "
                    f"req/s  p50 {result.p50_ms:.3f} ms  p99 {result.p99_ms:.3f} ms"
                    + (f"  cpu {cpu:.0f} µs/req" if cpu is not None else "")
                    + (f"  ERRORS {result.errors}" if result.errors else "")
                )

    def check_tags(self, label: str, url: str, expect: Sequence[str]) -> None:
        """One request before the load: the features the benchmark claims to exercise are on."""
        headers = {"content-type": "application/json", STICKY_HEADER: "bench-check-1"}
        response = httpx.post(url, content=EXAMPLE.read_bytes(), headers=headers, timeout=10)
        seen = {name: response.headers.get(name) for name in expect}
        missing = [name for name, value in seen.items() if value is None]
        self.checks.append(
            {"target": label, "status": response.status_code, "headers": seen, "missing": missing}
        )
        if response.status_code != 200 or missing:
            raise StartError(f"{label}: answered {response.status_code}, missing {missing}")

    def check_v2(self, url: str) -> None:
        """One V2 request before the load: answered by a version, with the gateway's tags."""
        from bench.versus import v2_body

        body = v2_body([json.loads(EXAMPLE.read_text())])
        headers = {"content-type": "application/json", STICKY_HEADER: "bench-check-1"}
        response = httpx.post(url, content=body, headers=headers, timeout=10)
        expect = ["x-model-version", "x-route-reason", "x-request-id"]
        seen = {name: response.headers.get(name) for name in expect}
        missing = [name for name, value in seen.items() if value is None]
        self.checks.append(
            {
                "target": "gateway/v2",
                "status": response.status_code,
                "headers": seen,
                "missing": missing,
            }
        )
        if response.status_code != 200 or missing:
            raise StartError(f"gateway/v2: answered {response.status_code}, missing {missing}")

    def start_gateway(
        self,
        backend: str,
        workers: int,
        resolve: dict[str, str],
        routing: Path | None = None,
        env: dict[str, str] | None = None,
        name: str = "",
    ) -> tuple[Proc, int]:
        port = free_port()
        argv = [
            sys.executable, "-m", "gateway", "serve",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        ]  # fmt: skip
        settings = {
            **self.args.gateway_env,
            **(env or {}),
            "GATEWAY_ROUTING_FILE": str(routing or self.routing),
            "GATEWAY_RESOLVE": json.dumps(resolve),
        }
        name = (
            f"gateway-{backend}-{workers}w"
            + ("-shadow" if routing else "")
            + (f"-{name}" if name else "")
        )
        proc = self.procs.start(name, argv, settings)
        proc.wait_http(f"http://127.0.0.1:{port}/ready", timeout=60)
        return proc, port

    def bench_backend(
        self,
        backend: str,
        addresses: dict[str, str],
        direct: str,
        peer: int,
        sessions: tuple[int, int],
    ) -> None:
        """``sessions``: the direct target's server and the nginx peer, for their CPU."""
        v2_only = self.args.v2_only
        say(
            f"{backend} backend: "
            + ("gateway /predict and V2" if v2_only else "direct, nginx, gateway")
        )
        targets = []
        if not v2_only:
            nginx_url = f"http://127.0.0.1:{peer}/predict"
            self.check_tags(
                f"nginx/{backend}", nginx_url, ["x-model-version", "x-routing-revision"]
            )
            targets += [
                Target("direct", None, f"http://{direct}/predict", sessions[0]),
                Target("nginx", None, nginx_url, sessions[1]),
            ]
        resolve = {f"{host}:8000": address for host, address in addresses.items()}
        gateways = []
        for workers in self.args.gateway_workers:
            gateway, port = self.start_gateway(backend, workers, resolve)
            gateways.append(gateway)
            url = f"http://127.0.0.1:{port}/predict"
            self.check_tags(
                f"gateway/{backend}",
                url,
                ["x-model-version", "x-route-reason", "x-routing-revision", "x-request-id"],
            )
            targets.append(Target("gateway", workers, url, gateway.pid))
        workers = self.args.gateway_workers[-1]
        if backend == "real" and not v2_only:
            # Shadow traffic's cost, in the same rounds: copies go to the v2.4.0 replica, which
            # also serves its 10% canary share.
            gateway, port = self.start_gateway(backend, workers, resolve, self.routing_shadow)
            gateways.append(gateway)
            targets.append(
                Target(
                    report.SHADOW_TARGET, workers, f"http://127.0.0.1:{port}/predict", gateway.pid
                )
            )
            # The prediction log's cost, in the same rounds: every answer recorded in SQLite.
            log_env = {"GATEWAY_PREDICTION_LOG": "true", "GATEWAY_DATA_DIR": str(self.tmp / "data")}
            gateway, port = self.start_gateway(backend, workers, resolve, env=log_env, name="log")
            gateways.append(gateway)
            targets.append(
                Target(report.LOG_TARGET, workers, f"http://127.0.0.1:{port}/predict", gateway.pid)
            )
        if backend == "real":
            # The Open Inference Protocol on the plain gateway of the last worker count, the same
            # customer as V2 JSON, in the same rounds as its /predict (bench/v2.py).
            from bench import v2
            from bench.versus import INFER_PATH

            plain = next(t for t in reversed(targets) if t.name == "gateway")
            v2_url = plain.url.removesuffix("/predict") + INFER_PATH
            v2_script = v2.v2_script(self.tmp, EXAMPLE, STICKY_HEADER)
            self.check_v2(v2_url)
            targets.append(Target(report.V2_TARGET, workers, v2_url, plain.session, v2_script))
        self.drive(backend, targets)
        if backend == "real" and not self.args.no_batch:
            from bench import v2

            say(f"real backend: a {self.args.batch_rows}-row V2 request against /predict/batch")
            plain = next(t for t in reversed(targets) if t.name == "gateway")
            self.v2_batch = v2.batch_v2(
                plain.url.removesuffix("/predict"),
                STABLE,
                PIN_HEADER,
                self.args.batch_rows,
                repeats=5,
                say=say,
            )
        for gateway in gateways:
            self.procs.stop(gateway)
        if backend == "real" and not self.args.no_overload:
            from bench.overload import measure_overload

            say("real backend: goodput at 1x and 4x the replicas' capacity")
            self.overload = measure_overload(self, resolve)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the gateway against nginx and direct calls (trivial backend and "
        "real model replicas), and /predict/batch against the source chapter's batch code.",
    )
    parser.add_argument("--smoke", action="store_true", help="1 s runs, trivial backend only")
    parser.add_argument(
        "--duration", type=float, default=6.0, help="seconds of load per target and conns"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds the duration is split into"
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per run")
    parser.add_argument(
        "--connections", type=_ints, default=[1, 64], help="comma list (default: 1,64)"
    )
    parser.add_argument(
        "--gateway-workers",
        type=_ints,
        default=[1, 2],
        help="gateway worker counts to run, the last one is held to the bars (default: 1,2)",
    )
    parser.add_argument(
        "--gateway-env",
        type=_assignment,
        action="append",
        default=[],
        metavar="GATEWAY_X=VALUE",
        help="extra gateway setting, e.g. GATEWAY_TRANSPORT=httpx (repeatable)",
    )
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads above 1 conn")
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--no-real", action="store_true", help="skip the real model replicas")
    parser.add_argument("--no-batch", action="store_true", help="skip the batch comparison")
    parser.add_argument(
        "--no-overload", action="store_true", help="skip goodput at 1x and 4x the capacity"
    )
    parser.add_argument(
        "--no-versus", action="store_true", help="skip the side by side with MLServer"
    )
    parser.add_argument(
        "--mlserver-workers",
        type=int,
        default=1,
        help="MLServer's parallel_workers (default 1, its own default; 0 = in the server process)",
    )
    parser.add_argument(
        "--v2-only",
        action="store_true",
        help="only the Open Inference Protocol rows: the real replicas' gateway /predict and V2 "
        "JSON at the last worker count, and the 1,000-row V2 request unless --no-batch",
    )
    parser.add_argument("--no-install", action="store_true", help="never apt-get install")
    parser.add_argument("--json", type=Path, default=None, help="where to write the JSON")
    parser.add_argument("--keep-tmp", action="store_true", help="keep configs and logs")
    args = parser.parse_args(argv)
    args.gateway_env = dict(args.gateway_env)
    if args.v2_only:
        args.no_versus = args.no_overload = True
        args.gateway_workers = args.gateway_workers[-1:]
    if args.smoke:
        args.duration, args.rounds, args.warmup, args.no_real = 1.0, 1, 0.0, True
        args.no_versus = True
        args.gateway_workers = args.gateway_workers[-1:]
        args.batch_rows = min(args.batch_rows, 20)
    return args


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("GATEWAY_"):
        raise argparse.ArgumentTypeError(f"expected GATEWAY_NAME=VALUE, got {text!r}")
    return name, value


def _ints(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma list of integers: {text}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers: {text}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        tools = ensure_tools(install=not args.no_install, say=say)
    except ToolError as exc:
        say(f"cannot run: {exc}")
        return 3
    started = time.monotonic()
    machine = report.describe_machine(tools)
    say(f"machine: {machine['summary']}")
    if machine["loadavg_1m"] > 0.5:
        say(f"warning: load average {machine['loadavg_1m']} before the run; numbers will be noisy")

    ensure_artifacts(ARTIFACTS, list(REPLICAS))
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    procs = Procs(tmp)
    try:
        run = prepare(args, tools, tmp, procs)
        batch = execute(run)
    except (StartError, WrkError) as exc:
        say(f"failed: {exc}")
        say(f"logs kept in {tmp}")
        args.keep_tmp = True
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        procs.close()
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    doc = report.build(
        args,
        machine,
        run.measurements,
        run.checks,
        batch,
        time.monotonic() - started,
        overload=run.overload,
        v2_batch=run.v2_batch,
    )
    if run.versus is not None:
        from bench import versus

        doc["versus"] = run.versus
    print(report.render(doc))
    if run.versus is not None:
        print(versus.render(run.versus))
    path = args.json or RESULTS / f"bench-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    if args.json is None:
        (RESULTS / "latest.json").write_text(json.dumps(doc, indent=2) + "\n")
    say(f"results written to {path}")
    return 0


def prepare(args: argparse.Namespace, tools: Tools, tmp: Path, procs: Procs) -> Run:
    routing = tmp / "routing.yaml"
    routing.write_text(routing_yaml())
    routing_shadow = tmp / "routing-shadow.yaml"
    routing_shadow.write_text(routing_yaml(SHADOW_PERCENT))
    loaded = load_config(routing)
    script = write_script(
        tmp / "predict.lua",
        EXAMPLE.read_text().replace("\n", "").replace("  ", ""),
        "/predict",
        STICKY_HEADER,
    )
    return Run(args, tools, tmp, procs, routing, routing_shadow, loaded.revision, script)


def execute(run: Run) -> Any:
    args, tmp, procs = run.args, run.tmp, run.procs
    revision = run.revision
    hosts = [(version, host) for version, names in REPLICAS.items() for host in names]
    trivial = {host: Backend(version, free_port()) for version, host in hosts}
    trivial_addr = {host: f"127.0.0.1:{b.port}" for host, b in trivial.items()}
    model_ports = {host: free_port() for _, host in hosts}
    model_addr = {host: f"127.0.0.1:{port}" for host, port in model_ports.items()}

    def pools(addresses: dict[str, str]) -> dict[str, list[str]]:
        return {v: [addresses[h] for h in names] for v, names in REPLICAS.items()}

    peers = [Peer("trivial", free_port(), pools(trivial_addr), WEIGHTS, STICKY_HEADER, revision)]
    if not args.no_real:
        peers.append(Peer("real", free_port(), pools(model_addr), WEIGHTS, STICKY_HEADER, revision))
    # The trivial backends and the peer in two nginx processes, so the peer's CPU per request
    # is its proxying alone, as the gateway's is.
    nginxes = {}
    for name, backends, its_peers in (
        ("nginx-backends", list(trivial.values()), []),
        ("nginx", [], peers),
    ):
        home = tmp / name
        home.mkdir()
        conf = home / "nginx.conf"
        conf.write_text(render_config(home, backends, its_peers))
        nginxes[name] = procs.start(name, nginx_argv(run.tools.nginx, home, conf))
    nginx, peer_nginx = nginxes["nginx-backends"], nginxes["nginx"]

    models: dict[str, Proc] = {}
    chapter: Proc | None = None
    chapter_port = free_port()
    if not args.no_real or (not args.no_batch and not args.smoke):
        # All ready before the first measurement: loading a model burns CPU.
        for version, host in hosts:
            models[host] = start_model(procs, host, version, model_ports[host])
        if not args.no_batch and not args.v2_only:
            chapter = start_model(
                procs, "chapter", hosts[0][0], chapter_port, "bench.chapter_app:create_app"
            )
    for backend in trivial.values():
        nginx.wait_http(f"http://127.0.0.1:{backend.port}/health", timeout=20)
    for host, proc in models.items():
        proc.wait_http(f"http://{model_addr[host]}/ready", timeout=120)
    if chapter is not None:
        chapter.wait_http(f"http://127.0.0.1:{chapter_port}/health", timeout=120)

    first = hosts[0][1]
    if not args.v2_only:
        run.bench_backend(
            "trivial", trivial_addr, trivial_addr[first], peers[0].port, (nginx.pid, peer_nginx.pid)
        )
    if not args.no_real:
        run.bench_backend(
            "real",
            model_addr,
            model_addr[first],
            peers[1].port,
            (models[first].pid, peer_nginx.pid),
        )

    if not args.no_versus:
        run.versus = compare_with_mlserver(
            run,
            model_addr[first] if first in models else None,
            models[first].pid if first in models else None,
        )
    if args.no_batch or args.v2_only:
        return None
    from bench.batch import run_batch  # heavy imports (pandas, shap) only when needed

    say(f"batch: {args.batch_rows} rows, chapter's code vs ours")
    url = f"http://{model_addr[first]}/predict/batch" if first in models else None
    version = hosts[0][0]
    return run_batch(
        ARTIFACTS / version / "model.joblib",
        version,
        args.batch_rows,
        url=url,
        chapter_url=f"http://127.0.0.1:{chapter_port}/predict/batch" if chapter else None,
        repeats=3 if args.smoke else 5,
        chapter_repeats=1 if args.smoke else 2,
    )


def compare_with_mlserver(run: Run, ours: str | None, ours_session: int | None) -> dict[str, Any]:
    """Our replica against MLServer over HTTP, and the per-row costs in process."""
    from bench import versus

    args = run.args
    model_path = ARTIFACTS / STABLE / "model.joblib"
    try:
        python: Any = versus.ensure_venv(say)
    except (OSError, subprocess.CalledProcessError) as exc:
        say(f"MLServer and onnxruntime not installable here ({exc}): measuring ours alone")
        python = None
    say("in process: one row, ours vs scikit-learn vs onnxruntime")
    doc: dict[str, Any] = {
        "in_process": versus.in_process(
            model_path, STABLE, EXAMPLE, python, repeats=2_000 if args.smoke else 20_000
        ),
        "http": [],
    }
    if ours is not None and python is not None:
        doc["http"] = versus.versus_http(
            procs=run.procs,
            tmp=run.tmp,
            wrk=run.tools.wrk,
            venv_python=python,
            artifacts=ARTIFACTS,
            version=STABLE,
            ours=ours,
            ours_session=ours_session,
            example=EXAMPLE,
            connections=args.connections,
            rounds=args.rounds,
            seconds=max(1.0, args.duration / args.rounds),
            wrk_threads=args.wrk_threads,
            mlserver_workers=args.mlserver_workers,
            say=say,
        )
    return doc


def start_model(
    procs: Procs,
    host: str,
    version: str,
    port: int,
    factory: str = "model_server.app:create_app",
) -> Proc:
    # Exactly as the local stack runs a replica.
    argv = [
        sys.executable, "-m", "uvicorn", "--factory", factory,
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
        "--timeout-graceful-shutdown", "10",
    ]  # fmt: skip
    if factory == "model_server.app:create_app":
        argv += ["--no-access-log", "--http", "model_server.server:ReplicaProtocol"]
    env = {
        "MODEL_VERSION": version,
        "MODEL_PATH": str(ARTIFACTS / version / "model.joblib"),
    }
    return procs.start(f"model-{host}", argv, env)
