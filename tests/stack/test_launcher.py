"""The local stack launcher: the pure plan, the supervisor, and the launcher run for real."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from routing_config import RoutingConfig, load_config, parse_config
from stack.launcher import parse_args, rerun_command
from stack.plan import GatewayPortTaken, Plan, PlanError, ProcessSpec, build_plan
from stack.supervisor import StopRequest, Supervisor

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = "/venv/bin/python"
ARTIFACTS = Path("/abs/artifacts")
ROUTING = Path("/abs/routing.yaml")


def shipped_config() -> RoutingConfig:
    return load_config(REPO_ROOT / "routing.yaml").config


def plan_for(config: RoutingConfig, taken: Collection[int] = (), **overrides: Any) -> Plan:
    """The plan with fixed paths, where exactly the ports in `taken` are in use."""
    kwargs: dict[str, Any] = {
        "python": PYTHON,
        "routing_path": ROUTING,
        "artifacts": ARTIFACTS,
        "host": "127.0.0.1",
        "port": 8080,
        "replica_base_port": 9101,
        "is_free": lambda host, port: port not in taken,
    }
    return build_plan(config, **(kwargs | overrides))


# --- the plan (pure) ----------------------------------------------------------------------------


def test_shipped_routing_file_is_valid_and_has_no_active_shadow() -> None:
    config = shipped_config()
    assert config.stable == "v2.3.1"
    assert config.weights() == {"v2.3.1": 90, "v2.4.0": 10}
    # Shipped ready to turn on (one line: percent), but copying nothing until then.
    assert config.shadow is not None and config.shadow.percent == 0


def test_one_replica_process_per_url_on_consecutive_ports() -> None:
    plan = plan_for(shipped_config())
    assert [(s.name, s.address, s.version) for s in plan.replicas] == [
        ("model-v2-3-1-a:8000", "127.0.0.1:9101", "v2.3.1"),
        ("model-v2-3-1-b:8000", "127.0.0.1:9102", "v2.3.1"),
        ("model-v2-4-0-a:8000", "127.0.0.1:9103", "v2.4.0"),
    ]
    assert plan.resolve == {
        "model-v2-3-1-a:8000": "127.0.0.1:9101",
        "model-v2-3-1-b:8000": "127.0.0.1:9102",
        "model-v2-4-0-a:8000": "127.0.0.1:9103",
    }


def test_each_replica_is_pinned_by_its_environment() -> None:
    plan = plan_for(shipped_config())
    envs = {s.name: dict(s.env) for s in plan.replicas}
    assert envs["model-v2-3-1-b:8000"] == {
        "MODEL_VERSION": "v2.3.1",
        "MODEL_PATH": "/abs/artifacts/v2.3.1/model.joblib",
    }
    assert envs["model-v2-4-0-a:8000"] == {
        "MODEL_VERSION": "v2.4.0",
        "MODEL_PATH": "/abs/artifacts/v2.4.0/model.joblib",
    }
    first = plan.replicas[0]
    assert first.argv == (
        PYTHON,
        "-m",
        "uvicorn",
        "--factory",
        "model_server.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        "9101",
        "--log-level",
        "warning",
        "--no-access-log",
        "--http",
        "model_server.server:ReplicaProtocol",
        "--timeout-graceful-shutdown",
        "10",
    )
    assert first.ready_path == "/ready"


def test_taken_ports_are_skipped() -> None:
    plan = plan_for(shipped_config(), taken={9101, 9103, 9104})
    assert [s.address for s in plan.replicas] == [
        "127.0.0.1:9102",
        "127.0.0.1:9105",
        "127.0.0.1:9106",
    ]


def test_replicas_never_take_the_gateway_port() -> None:
    plan = plan_for(shipped_config(), port=9102)
    assert [s.address for s in plan.replicas] == [
        "127.0.0.1:9101",
        "127.0.0.1:9103",
        "127.0.0.1:9104",
    ]


def test_gateway_gets_routing_file_and_resolve_map() -> None:
    plan = plan_for(shipped_config(), host="0.0.0.0", port=8081)
    gateway = plan.gateway
    assert gateway is not None
    assert gateway.argv == (PYTHON, "-m", "gateway", "serve", "--host", "0.0.0.0", "--port", "8081")
    assert gateway.env["GATEWAY_ROUTING_FILE"] == "/abs/routing.yaml"
    assert json.loads(gateway.env["GATEWAY_RESOLVE"]) == plan.resolve
    assert gateway.ready_path == "/health"
    assert plan.processes == (*plan.replicas, gateway)


def test_taken_gateway_port_is_an_error_that_names_the_next_free_one() -> None:
    with pytest.raises(GatewayPortTaken, match="gateway port 127.0.0.1:8080 is taken") as raised:
        plan_for(shipped_config(), taken={8080, 8081})
    assert raised.value.free_port == 8082


def test_rerun_command_through_make_names_its_port_variable() -> None:
    assert rerun_command([], 8081, via_make=True) == "make up PORT=8081"
    assert rerun_command(["--port", "8080"], 8082, via_make=True) == "make up PORT=8082"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], ["-m", "stack", "--port", "8081"]),
        (["--port", "8080"], ["-m", "stack", "--port", "8081"]),
        (
            ["--routing", "my routing.yaml", "--port=8080", "--no-gateway"],
            ["-m", "stack", "--routing", "my routing.yaml", "--no-gateway", "--port", "8081"],
        ),
    ],
)
def test_rerun_command_keeps_the_other_arguments(argv: list[str], expected: list[str]) -> None:
    command = shlex.split(rerun_command(argv, 8081, via_make=False))
    assert Path(command[0]).name.startswith("python")
    assert command[1:] == expected
    assert parse_args(command[3:]).port == 8081


def test_make_up_passes_a_port_given_on_its_command_line() -> None:
    def stack_line(*make_args: str, env: dict[str, str] | None = None) -> str:
        result = subprocess.run(
            ["make", "--dry-run", "up", *make_args],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, **(env or {})},
            check=True,
        )
        return next(line for line in result.stdout.splitlines() if "-m stack" in line)

    assert stack_line("PORT=8081").split()[-2:] == ["--port", "8081"]
    assert stack_line().split()[-1] == "stack"
    # A PORT exported by something else does not move the gateway off 8080.
    assert stack_line(env={"PORT": "3000"}).split()[-1] == "stack"
    assert stack_line().startswith("STACK_VIA_MAKE=1 ")


def test_without_gateway_only_replicas_are_planned() -> None:
    plan = plan_for(shipped_config(), with_gateway=False, taken={8080}, replica_base_port=8080)
    assert plan.gateway is None
    assert plan.processes == plan.replicas
    assert plan.replicas[0].address == "127.0.0.1:8081"


def test_a_v2_version_is_reached_as_written_and_nothing_is_started_for_it() -> None:
    text = (
        (REPO_ROOT / "routing.yaml")
        .read_text()
        .replace(
            "    replicas: [http://model-v2-4-0-a:8000]",
            "    replicas: [http://127.0.0.1:8090]\n    protocol: v2\n"
            "    score: {output: predict_proba, column: 1}",
        )
    )
    config = parse_config(text).config
    plan = build_plan(
        config,
        python="python",
        routing_path=Path("routing.yaml"),
        artifacts=Path("artifacts"),
        host="127.0.0.1",
        port=8080,
        replica_base_port=9100,
        is_free=lambda host, port: True,
    )
    assert [spec.version for spec in plan.replicas] == ["v2.3.1", "v2.3.1"]
    assert "127.0.0.1:8090" not in plan.resolve and len(plan.resolve) == 2
    assert plan.external_versions == ("v2.4.0",)


def test_no_free_port_is_an_error() -> None:
    with pytest.raises(PlanError, match="no free port"):
        plan_for(shipped_config(), replica_base_port=65535)


# --- the supervisor, with tiny stand-in processes -----------------------------------------------


def sleeper(name: str, code: str = "import time; time.sleep(60)") -> ProcessSpec:
    return ProcessSpec(
        name=name,
        argv=(sys.executable, "-c", code),
        env={},
        address="127.0.0.1:0",
        version="v0",
        ready_path="/",
    )


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def test_supervisor_restarts_a_process_that_dies() -> None:
    messages: list[str] = []
    supervisor = Supervisor(
        [sleeper("a"), sleeper("b")], stop=StopRequest(), say=messages.append, backoff_s=0.1
    )
    supervisor.start_all()
    try:
        first = supervisor.pid_of("a")
        assert first is not None
        os.kill(first, signal.SIGKILL)

        def restarted() -> bool:
            supervisor.check()
            return supervisor.pid_of("a") not in (None, first)

        wait_for(restarted, 10, "a restart")
        assert any("a (pid" in m and "SIGKILL" in m for m in messages), messages
    finally:
        supervisor.stop_all(grace_s=5)
    assert supervisor.pid_of("a") is None
    assert supervisor.pid_of("b") is None


def test_supervisor_does_not_restart_after_stop_request() -> None:
    stop = StopRequest()
    supervisor = Supervisor([sleeper("a")], stop=stop, say=lambda m: None, backoff_s=0)
    supervisor.start_all()
    pid = supervisor.pid_of("a")
    assert pid is not None
    stop(signal.SIGINT, None)
    os.kill(pid, signal.SIGKILL)
    # Until the kill has taken effect, so the check below sees the exit: the check is where a
    # restart would happen (back-off 0), so none after it means none at all.
    wait_for(lambda: supervisor.pid_of("a") is None, 5, "a to die of SIGKILL")
    supervisor.check()
    assert supervisor.pid_of("a") is None
    supervisor.stop_all(grace_s=1)


def test_stop_all_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    marker = tmp_path / "ignoring"
    code = (
        "import signal, time, pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
    )
    messages: list[str] = []
    supervisor = Supervisor([sleeper("stubborn", code)], stop=StopRequest(), say=messages.append)
    supervisor.start_all()
    wait_for(marker.exists, 10, "the child to ignore SIGTERM")
    started = time.monotonic()
    supervisor.stop_all(grace_s=0.5)
    assert time.monotonic() - started < 5
    assert supervisor.pid_of("stubborn") is None
    assert any("killing" in m for m in messages), messages


# --- the launcher, for real on 127.0.0.1 --------------------------------------------------------


def routing_text(replicas: dict[str, list[str]]) -> str:
    versions = "\n".join(
        f"  {v}:\n    replicas: [{', '.join(urls)}]" for v, urls in replicas.items()
    )
    weights = ", ".join(f"{v}: {100 if i == 0 else 0}" for i, v in enumerate(replicas))
    text = (
        f"service: stack-test\nstable: {next(iter(replicas))}\nmode: canary\n"
        f"versions:\n{versions}\ncanary:\n  weights: {{{weights}}}\n"
    )
    parse_config(text)  # the launcher would refuse an invalid file; fail here, clearly
    return text


@dataclass
class RunningStack:
    proc: subprocess.Popen[bytes]
    status_file: Path
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def status(self) -> dict[str, dict]:
        data = json.loads(self.status_file.read_text())
        return {p["name"]: p for p in data["processes"]}

    def wait_for(self, predicate: Callable[[], object], timeout_s: float, what: str) -> None:
        try:
            wait_for(predicate, timeout_s, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- launcher output ---\n{self.log()}") from None


def health(address: str) -> dict | None:
    try:
        response = httpx.get(f"http://{address}/health", timeout=1.0)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Still in the process table: gone all the same if it is a zombie waiting for its reaper
    # (it runs no code and holds no port).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


@contextmanager
def launched(
    tmp_path: Path, artifacts_dir: Path, replicas: dict[str, list[str]]
) -> Iterator[RunningStack]:
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_text(replicas))
    status_file = tmp_path / "status.json"
    log_file = tmp_path / "launcher.log"
    base = 19300 + random.randrange(0, 500) * 4
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stack",
                "--routing",
                str(routing),
                "--artifacts",
                str(artifacts_dir),
                "--replica-base-port",
                str(base),
                "--no-gateway",
                "--ready-timeout",
                "60",
                "--status-file",
                str(status_file),
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own process group, as a shell gives a foreground job: Ctrl-C can then be
            # simulated with killpg, and cleanup below can reach every child at once.
            start_new_session=True,
        )
    stack = RunningStack(proc, status_file, log_file)
    try:
        expected = sum(len(urls) for urls in replicas.values())
        stack.wait_for(
            lambda: stack.status_file.exists() and len(stack.status()) == expected,
            30,
            "the status file",
        )
        stack.wait_for(lambda: "ready in" in stack.log(), 60, "the stack to be ready")
        yield stack
    finally:
        if stack.proc.poll() is None:
            os.killpg(stack.proc.pid, signal.SIGKILL)
            stack.proc.wait(10)


def test_launcher_runs_restarts_and_stops_replicas(tmp_path: Path, artifacts_dir: Path) -> None:
    replicas = {"v2.3.1": ["http://model-a:8000"], "v2.4.0": ["http://model-b:8000"]}
    with launched(tmp_path, artifacts_dir, replicas) as stack:
        status = stack.status()
        assert set(status) == {"model-a:8000", "model-b:8000"}
        assert health(status["model-a:8000"]["address"])["model_version"] == "v2.3.1"
        assert health(status["model-b:8000"]["address"])["model_version"] == "v2.4.0"
        assert "model-a:8000 -> 127.0.0.1:" in stack.log()

        # One replica dies: it is reported and restarted; the other never notices.
        victim = status["model-b:8000"]
        os.kill(victim["pid"], signal.SIGKILL)
        stack.wait_for(
            lambda: stack.status()["model-b:8000"]["pid"] not in (None, victim["pid"]),
            30,
            "model-b to be restarted",
        )
        stack.wait_for(
            lambda: (health(victim["address"]) or {}).get("model_version") == "v2.4.0",
            30,
            "the restarted model-b to answer",
        )
        assert "model-b:8000" in stack.log() and "SIGKILL" in stack.log()
        assert stack.status()["model-a:8000"]["pid"] == status["model-a:8000"]["pid"]

        pids = [p["pid"] for p in stack.status().values()]
        stack.proc.send_signal(signal.SIGTERM)
        assert stack.proc.wait(20) == 0, stack.log()

    for process in status.values():
        assert health(process["address"]) is None, f"{process['name']} still answers"
    assert all(is_gone(pid) for pid in pids)
    assert not stack.status_file.exists()


def test_ctrl_c_stops_every_process_without_restarts(tmp_path: Path, artifacts_dir: Path) -> None:
    with launched(tmp_path, artifacts_dir, {"v2.3.1": ["http://model-a:8000"]}) as stack:
        replica = stack.status()["model-a:8000"]
        # A terminal's Ctrl-C signals the whole foreground process group: launcher and children.
        os.killpg(stack.proc.pid, signal.SIGINT)
        assert stack.proc.wait(20) == 0, stack.log()

    assert health(replica["address"]) is None
    assert is_gone(replica["pid"])
    assert "restarting" not in stack.log()
    assert "SIGINT received" in stack.log()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux")
def test_replicas_do_not_outlive_a_killed_launcher(tmp_path: Path, artifacts_dir: Path) -> None:
    with launched(tmp_path, artifacts_dir, {"v2.3.1": ["http://model-a:8000"]}) as stack:
        replica = stack.status()["model-a:8000"]
        # Only the launcher: it gets no chance to clean up, so the kernel must.
        os.kill(stack.proc.pid, signal.SIGKILL)
        stack.proc.wait(10)
        stack.wait_for(lambda: is_gone(replica["pid"]), 20, "the orphaned replica to exit")
    assert health(replica["address"]) is None


def test_invalid_routing_file_exits_1_with_the_messages(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "service: x\nstable: v1\nmode: canary\nversions:\n  v1:\n    replicas: [http://a:1]\n"
        "canary:\n  weights: {v1: 98}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "stack", "--routing", str(routing), "--no-gateway"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "canary.weights: sum to 98, must be 100" in result.stderr


@pytest.mark.parametrize("via_make", [True, False])
def test_a_taken_gateway_port_says_what_to_type(
    tmp_path: Path, artifacts_dir: Path, via_make: bool
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(routing_text({"v2.3.1": ["http://model-a:8000"]}))
    env = {k: v for k, v in os.environ.items() if k != "STACK_VIA_MAKE"}
    if via_make:
        env["STACK_VIA_MAKE"] = "1"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["--routing", str(routing), "--artifacts", str(artifacts_dir), "--port", str(port)]
        result = subprocess.run(
            [sys.executable, "-m", "stack", *argv],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[-2] == (
        f"[stack] error: gateway port 127.0.0.1:{port} is taken; stop what uses it, "
        "or start the stack on another port:"
    )
    advice = lines[-1].removeprefix("[stack]   ")
    if via_make:
        suggested = int(advice.removeprefix("make up PORT="))
    else:
        command = shlex.split(advice)
        assert (REPO_ROOT / command[0]).resolve() == Path(sys.executable).resolve()
        assert command[1:-1] == ["-m", "stack", *argv[:-2], "--port"]
        suggested = int(command[-1])
    assert suggested > port
    assert "pass --port" not in result.stdout + result.stderr
